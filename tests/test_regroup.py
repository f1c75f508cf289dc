"""Unknown particles grouped again by scores against references made from their own subgroups."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sklearn.metrics import adjusted_rand_score

from affinitomo.cluster.align import AlignOptions, align_unknown_groups
from affinitomo.cluster.clustering import ClusterOptions, cluster_points, with_unknown_groups
from affinitomo.cluster.regroup import regroup_unknown
from affinitomo.geometry import random_matrices, rotate_volume
from synthetic_shapes import asymmetric_phantom, rod_phantom


def two_molecules(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stack, true molecule per row, features that barely tell them apart)."""
    rng = np.random.default_rng(seed)
    n = 32
    truth = np.repeat([0, 1], count)
    shapes = [asymmetric_phantom(n), rod_phantom(n)]
    shapes = [s / s.std() for s in shapes]
    stack = np.stack([rotate_volume(shapes[t], r) for t, r in zip(truth, random_matrices(2 * count, rng))])
    stack = stack + rng.normal(scale=0.7 * stack.std(), size=stack.shape)
    features = rng.normal(size=(2 * count, 4))
    features[:, 0] += 1.0 * truth  # one sigma apart in one of four dimensions
    return stack.astype(np.float32), truth, features


def test_regrouping_separates_molecules_the_features_merge():
    stack, truth, features = two_molecules(30)
    cluster = ClusterOptions()
    by_features, _ = cluster_points(features, cluster)
    align = AlignOptions(align_rounds=3, align_min_particles=5, align_no_wedge=True)
    labels, info = regroup_unknown(stack, features, np.ones(len(truth), bool), 10.0, cluster, align)
    assert info["references"] >= 2
    assert adjusted_rand_score(truth, labels) > 0.8, (labels, info)
    assert adjusted_rand_score(truth, labels) > adjusted_rand_score(truth, by_features) + 0.3


def test_regrouping_only_touches_the_unknown_rows_and_needs_enough_of_them():
    stack, truth, features = two_molecules(6)
    unknown = np.zeros(len(truth), bool)
    unknown[:5] = True
    labels, info = regroup_unknown(stack, features, unknown, 10.0, ClusterOptions(), AlignOptions())
    assert labels is None and "skipped" in info  # 5 particles: fewer than 2 x align_min_particles (10)
    clusters = np.array([0] * 5 + [1] * 4 + [2] * 3)
    merged = with_unknown_groups(clusters, np.arange(12) < 5, np.array([0, 0, 1, 1, -1]))
    assert merged[4] == -1 and len(set(merged[:4])) == 2 and not set(merged[:4]) & set(merged[5:])
    assert (merged[5:9] == merged[5]).all() and (merged[9:] == merged[9]).all()


def test_aligned_groups_take_back_members_that_match_their_reference_best():
    stack, truth, _ = two_molecules(12, seed=1)
    groups = np.where(np.arange(len(truth)) < 20, truth, -1)  # the last 4 rows are in no unknown group
    groups[[0, 1, 13]] = 1 - groups[[0, 1, 13]]  # three particles put in the other molecule's group
    opts = AlignOptions(align_starts=1, align_rounds=3, align_min_particles=5, align_no_wedge=True)
    aligned, after = align_unknown_groups(stack, groups, 10.0, opts)
    assert (after[:20] == truth[:20]).all() and (after[20:] == -1).all()
    assert sorted(aligned) == [0, 1] and sum(a["moved_in"] for a in aligned.values()) == 3
    assert sorted(np.concatenate([a["rows"] for a in aligned.values()]).tolist()) == list(range(20))
    kept, same = align_unknown_groups(stack, groups, 10.0, replace(opts, align_reassign=False))
    assert (same == groups).all() and all(a["moved_in"] == 0 for a in kept.values())
