"""Known classes and unknown groups competing for particles (averaging.compete)."""

from __future__ import annotations

import numpy as np

from affinitomo.averaging.align import AlignOptions, align_unknown_groups
from affinitomo.averaging.compete import class_references, compete
from affinitomo.averaging.stage import moved_clusters
from affinitomo.geometry import random_matrices, rotate_volume
from synthetic_shapes import asymmetric_phantom, rod_phantom


def test_particles_go_to_the_side_whose_average_they_match():
    rng = np.random.default_rng(0)
    n = 32
    # rows 0-11: labelled 'blob'; 12-17: unlabelled 'blob' put in the group; 18-29: rods in the group;
    # 30-33: rods called 'blob'
    truth = np.array(["blob"] * 18 + ["rod"] * 16)
    poses = random_matrices(len(truth), rng)
    shapes = {"blob": asymmetric_phantom(n), "rod": rod_phantom(n)}
    stack = np.stack([rotate_volume(shapes[t], r) for t, r in zip(truth, poses)])
    stack = (stack + rng.normal(scale=0.3 * stack.std(), size=stack.shape)).astype(np.float32)
    labelled = np.arange(len(truth)) < 12
    labels = np.where(labelled, "blob", "")
    assigned = np.array(["blob"] * 12 + ["unknown"] * 18 + ["blob"] * 4, dtype=object)
    groups = np.where(assigned == "unknown", 7, -1)
    opts = AlignOptions(align_starts=1, align_rounds=3, align_no_wedge=True, align_min_particles=5)
    aligned, groups = align_unknown_groups(stack, groups, 10.0, opts)
    best_template = np.array(["blob"] * len(truth))  # the only template
    references = class_references(stack, labels, labelled, best_template, poses, 10.0, opts)
    assert set(references) == {"blob"}
    out = compete(stack, assigned, groups, labelled, references, aligned, best_template, 10.0, opts, "unknown")
    assert list(out.assigned) == ["blob"] * 18 + ["unknown"] * 16
    assert list(out.groups) == [-1] * 18 + [7] * 16
    assert sorted(out.into_groups.tolist()) == [30, 31, 32, 33] and out.rotation.shape == (4, 3, 3)
    assert out.counts == {"to_groups": 4, "to_classes": 6}
    clusters = moved_clusters(np.array([2] * 12 + [7] * 18 + [2] * 4), assigned, out.assigned, out.groups)
    assert list(clusters) == [2] * 18 + [7] * 16


def test_nothing_moves_without_references_or_groups():
    stack = np.zeros((3, 32, 32, 32), dtype=np.float32)
    assigned = np.array(["a", "unknown", "a"], dtype=object)
    out = compete(stack, assigned, np.array([-1, 0, -1]), np.zeros(3, bool), {}, {}, np.array(["a"] * 3), 10.0,
                  AlignOptions(), "unknown")
    assert list(out.assigned) == list(assigned) and out.into_groups.size == 0
