"""Reference-free alignment of an unknown group (averaging.align)."""

from __future__ import annotations

import numpy as np
import pytest

from affinitomo.averaging.align import (AlignOptions, align_unknown_groups, average_in_frame, build_reference,
                                      masked_reference, reference_mask)
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
    rotation, reference, score = aligned[0].rotation, aligned[0].reference, aligned[0].score
    err = pose_error(rotation, true, np.zeros(count, dtype=str))["per_class"][""]["median_deg"]
    assert err < 10.0, err
    assert 0 < score <= 1 and reference.shape == (n, n, n)
    # The average in the found frame resembles the phantom (up to the global rotation).
    assert np.corrcoef(average_in_frame(stack, rotation).ravel(), reference.ravel())[0, 1] > 0.9


def test_the_reference_mask_covers_the_molecule_and_drops_the_background():
    rng = np.random.default_rng(1)
    n = 32
    phantom = asymmetric_phantom(n)
    noisy = phantom + rng.normal(scale=0.1 * phantom.max(), size=phantom.shape)  # an average of a few dozen
    mask = reference_mask(noisy, 10.0, 20.0)
    assert mask is not None and mask.shape == (n, n, n) and 0 <= mask.min() and mask.max() == 1
    assert np.sum(phantom ** 2 * (mask > 0.5)) > 0.95 * np.sum(phantom ** 2)  # the molecule is inside
    assert np.mean(mask > 0) < 0.15  # most of the box (background noise) is not
    assert mask[0, 0, 0] == 0 and mask[n // 2, n // 2, n // 2] == 1
    masked = masked_reference(noisy, 10.0, AlignOptions())
    assert abs(masked.std() - 1) < 1e-3 and np.all(masked[mask == 0] == masked[0, 0, 0])


def test_no_mask_where_nothing_stands_out_and_none_when_switched_off():
    assert reference_mask(np.ones((32, 32, 32)), 10.0, 20.0) is None  # no molecule above a background
    noisy = asymmetric_phantom(32) + np.random.default_rng(0).normal(scale=0.05, size=(32, 32, 32))
    unmasked = masked_reference(noisy, 10.0, AlignOptions(align_mask=False))
    masked = masked_reference(noisy, 10.0, AlignOptions())
    assert np.mean(unmasked == unmasked[0, 0, 0]) < 0.01  # the background noise stays
    assert np.mean(masked == masked[0, 0, 0]) > 0.8  # the background is flat
    assert np.corrcoef(masked.ravel(), unmasked.ravel())[0, 1] > 0.8


@pytest.mark.parametrize("bad", [{"align_starts": 0}, {"align_rounds": 1.5}, {"align_resolution": -1},
                                 {"align_wedge": [60, -60]}, {"align_wedge": "60"}, {"align_nonsense": 1},
                                 {"align_regroup_resolution": 0}, {"align_regroup_references": 0},
                                 {"align_mask": "false"}, {"align_compete": 1}, {"align_reassign": None},
                                 {"align_reassign_rounds": 0}, {"align_pose_mean": "yes"},
                                 {"align_reassign_halves": 1}, {"align_refresh": "no"}])
def test_bad_alignment_options(bad):
    with pytest.raises(InputError):
        AlignOptions.from_dict(bad, source="opts.json")


def test_starts_are_halved_every_two_rounds_and_the_best_survivor_wins(monkeypatch):
    import affinitomo.search.stack as search

    calls: list[float] = []
    rng = np.random.default_rng(3)

    class Found:
        def __init__(self, count: int):
            calls.append(float(rng.uniform(0.1, 0.5)))
            self.scores = np.full((count, 1), calls[-1])
            self.matrices = np.tile(np.eye(3), (count, 1, 1, 1))

    monkeypatch.setattr(search, "match_stack", lambda volumes, *a, **k: Found(len(volumes)))
    volumes = np.stack([asymmetric_phantom(16)] * 6).astype(np.float32)
    opts = AlignOptions(align_starts=5, align_rounds=5, align_no_wedge=True)
    reference, score = build_reference(volumes, 10.0, opts)
    # 5 starts for rounds 1-2, the better 3 for rounds 3-4, the better 2 for round 5.
    assert len(calls) == 5 * 2 + 3 * 2 + 2
    assert score == max(calls[-2:]) and reference.shape == (16, 16, 16)
    calls.clear()
    build_reference(volumes, 10.0, opts, starts=1)
    assert len(calls) == 5  # one start: every round, no cut


def test_a_given_average_makes_each_next_reference(monkeypatch):
    import affinitomo.search.stack as search

    class Found:
        def __init__(self, count: int):
            self.scores = np.full((count, 1), 0.3)
            self.matrices = np.tile(np.eye(3), (count, 1, 1, 1))

    monkeypatch.setattr(search, "match_stack", lambda volumes, *a, **k: Found(len(volumes)))
    phantom = asymmetric_phantom(16).astype(np.float32)
    volumes = np.stack([phantom] * 6)
    seen: list[tuple[int, tuple[int, ...]]] = []
    shifted = np.roll(phantom, 3, axis=0)

    def average(members, found, reference):
        seen.append((len(members), reference.shape))
        return shifted

    opts = AlignOptions(align_starts=2, align_rounds=3, align_no_wedge=True, align_mask=False)
    reference, _ = build_reference(volumes, 10.0, opts, average=average)
    assert seen == [(6, (16, 16, 16))] * (2 * 2 + 1)
    assert np.corrcoef(reference.ravel(), shifted.ravel())[0, 1] > 0.999  # the given average, not the members' mean
