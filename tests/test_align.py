"""Reference-free alignment of an unknown group (cluster.align)."""

from __future__ import annotations

import numpy as np
import pytest

from affinitomo.cluster.align import AlignOptions, align_unknown_groups, average_in_frame
from affinitomo.errors import InputError
from affinitomo.evaluate import pose_error
from affinitomo.geometry import random_matrices, rotate_volume
from synthetic_shapes import asymmetric_phantom


def test_a_group_aligns_to_itself_without_a_template():
    rng = np.random.default_rng(0)
    n, count = 32, 24
    phantom = asymmetric_phantom(n)
    true = random_matrices(count, rng)
    stack = np.stack([rotate_volume(phantom, r) for r in true])
    stack = stack + rng.normal(scale=0.5 * stack.std(), size=stack.shape)
    opts = AlignOptions(align_starts=2, align_rounds=3, align_no_wedge=True)
    aligned, _ = align_unknown_groups(stack.astype(np.float32), np.zeros(count, dtype=np.int64), 10.0, opts)
    rotation, reference, score = aligned[0]["rotation"], aligned[0]["reference"], aligned[0]["score"]
    err = pose_error(rotation, true, np.zeros(count, dtype=str))["per_class"][""]["median_deg"]
    assert err < 10.0, err
    assert 0 < score <= 1 and reference.shape == (n, n, n)
    # The average in the found frame resembles the phantom (up to the global rotation).
    assert np.corrcoef(average_in_frame(stack, rotation).ravel(), reference.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("bad", [{"align_starts": 0}, {"align_rounds": 1.5}, {"align_resolution": -1},
                                 {"align_wedge": [60, -60]}, {"align_wedge": "60"}, {"align_nonsense": 1},
                                 {"align_regroup_resolution": 0}, {"align_regroup_references": 0}])
def test_bad_alignment_options(bad):
    with pytest.raises(InputError):
        AlignOptions.from_dict(bad, source="opts.json")
