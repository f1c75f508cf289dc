"""Unknown particles grouped again by scores against references made from their own subgroups."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sklearn.metrics import adjusted_rand_score

from affinitomo.averaging.align import AlignOptions, align_unknown_groups, match_references, refresh_groups, split_halves
from affinitomo.averaging.regroup import regroup_unknown
from affinitomo.evaluate import pose_error
from affinitomo.geometry import random_matrices, rotate_volume
from affinitomo.grouping import ClusterOptions, cluster_points, with_unknown_groups
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
    assert sorted(aligned) == [0, 1] and sum(a.moved_in for a in aligned.values()) == 3
    assert sorted(np.concatenate([a.rows for a in aligned.values()]).tolist()) == list(range(20))
    kept, same = align_unknown_groups(stack, groups, 10.0, replace(opts, align_reassign=False))
    assert (same == groups).all() and all(a.moved_in == 0 for a in kept.values())


def look_alikes(count: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(stack, true molecule per row) of two molecules that share three of their four lobes
    (correlation 0.94), ``count`` each at random poses, white noise ``noise`` times the signal's std."""
    n = 32
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2

    def lobe(c: tuple[float, float, float], s: float, a: float) -> np.ndarray:
        return a * np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * s ** 2))

    a = asymmetric_phantom(n)
    b = a - lobe((-2, -2, -6), 1.8, 0.7) + lobe((3, -5, 4), 1.8, 0.7)  # one lobe moved
    rng = np.random.default_rng(seed)
    truth = np.repeat([0, 1], count)
    shapes = [a / a.std(), b / b.std()]
    stack = np.stack([rotate_volume(shapes[t], r) for t, r in zip(truth, random_matrices(2 * count, rng))])
    return (stack + rng.normal(scale=noise * stack.std(), size=stack.shape)).astype(np.float32), truth


def test_reassignment_rounds_unmix_look_alikes_that_one_round_leaves_mixed(monkeypatch):
    import affinitomo.averaging.align as align

    stack, truth = look_alikes(20, noise=2.5, seed=1)
    rng = np.random.default_rng(1)
    groups = truth.copy()
    swapped = np.concatenate([rng.choice(20, 8, replace=False), 20 + rng.choice(20, 8, replace=False)])
    groups[swapped] = 1 - groups[swapped]  # each group 60 % one molecule, 40 % the other
    opts = AlignOptions(align_starts=1, align_rounds=3, align_min_particles=5, align_no_wedge=True)
    _, once = align_unknown_groups(stack, groups, 10.0, replace(opts, align_reassign_rounds=1))
    assert np.mean(once == truth) < 0.8  # the references of mixed groups are mixed: few move
    calls = []
    matched = align.match_references
    monkeypatch.setattr(align, "match_references", lambda *a, **k: calls.append(1) or matched(*a, **k))
    aligned, rounds = align_unknown_groups(stack, groups, 10.0, opts)
    assert (rounds == truth).all()
    assert 1 < len(calls) < opts.align_reassign_rounds  # stopped when none moved, before the cap
    assert sorted(aligned) == [0, 1] and all(a.rows.size == 20 for a in aligned.values())


def test_halves_split_every_group_evenly_and_stay_put():
    groups = np.repeat([3, 0, 7], [5, 10, 1])
    half = split_halves(groups, seed=0)
    assert [int(half[groups == g].sum()) for g in (3, 0, 7)] == [2, 5, 0]
    assert (split_halves(groups, seed=0) == half).all() and not (split_halves(groups, seed=1) == half).all()


def test_cross_validated_halves_join_a_small_group_to_the_larger_one_of_its_molecule():
    # One molecule in two groups (16 and 6 particles), another in a third; noise 3x the signal.
    rng = np.random.default_rng(0)
    n = 32
    shapes = [s / s.std() for s in (asymmetric_phantom(n), rod_phantom(n))]
    truth = np.repeat([0, 1], [22, 16])
    stack = np.stack([rotate_volume(shapes[t], r) for t, r in zip(truth, random_matrices(len(truth), rng))])
    stack = (stack + rng.normal(scale=3 * stack.std(), size=stack.shape)).astype(np.float32)
    groups = np.repeat([0, 2, 1], [16, 6, 16])
    opts = AlignOptions(align_starts=1, align_rounds=3, align_min_particles=5, align_no_wedge=True)
    # Matched against averages that contain them, the 6 prefer their own small group...
    _, full = align_unknown_groups(stack, groups, 10.0, opts)
    assert (full == groups).all()
    # ... against the halves that do not, they join the other 16 of their molecule; no one else moves.
    aligned, halves = align_unknown_groups(stack, groups, 10.0, replace(opts, align_reassign_halves=True))
    assert (halves == np.where(truth == 0, 0, 1)).all()
    assert sorted(aligned) == [0, 1] and aligned[0].moved_in == 6 and aligned[0].rows.size == 22


def test_refresh_builds_anew_the_reference_of_a_group_that_grew():
    # 8 particles of a molecule make a group's reference; 22 more of it join later (as the competition
    # with the known classes moves them), at their poses against that reference of 8.
    rng = np.random.default_rng(2)
    n = 32
    shapes = [s / s.std() for s in (asymmetric_phantom(n), rod_phantom(n))]
    truth = np.repeat([0, 1], [30, 10])
    true = random_matrices(len(truth), rng)
    stack = np.stack([rotate_volume(shapes[t], r) for t, r in zip(truth, true)])
    stack = (stack + rng.normal(scale=2.5 * stack.std(), size=stack.shape)).astype(np.float32)
    opts = AlignOptions(align_starts=2, align_rounds=3, align_min_particles=5, align_no_wedge=True,
                        align_reassign=False)
    aligned, _ = align_unknown_groups(stack, np.repeat([0, -1, 1], [8, 22, 10]), 10.0, opts)
    joined = match_references(stack, np.arange(8, 30), aligned[0].reference[None], 10.0, opts)[1][:, 0]
    refreshed = refresh_groups(stack, aligned, np.repeat([0, 1], [30, 10]), 10.0, opts)
    assert refreshed[1] is aligned[1]  # unchanged
    grown = refreshed[0]
    assert grown.rows.tolist() == list(range(30)) and grown.moved_in == 22
    assert grown.rotation.shape == (30, 3, 3) and not np.allclose(grown.reference, aligned[0].reference)

    def error(poses: np.ndarray) -> float:
        return pose_error(poses, true[:30], np.zeros(30, dtype=int))["per_class"]["0"]["median_deg"]

    # the 30 at the poses of a reference of 30 against 8 at theirs and 22 against the reference of 8
    assert error(grown.rotation) < error(np.concatenate([aligned[0].rotation, joined]))
    # a change under REFRESH_FRACTION, or a group left with fewer than align_min_particles, is kept
    few = refresh_groups(stack, refreshed, np.repeat([0, -1, 1], [29, 1, 10]), 10.0, opts)
    assert few[0] is refreshed[0]  # 1 of 29 changed
    shrunk = refresh_groups(stack, aligned, np.repeat([0, -1, 1], [8, 29, 3]), 10.0, opts)
    assert shrunk[1] is aligned[1]
