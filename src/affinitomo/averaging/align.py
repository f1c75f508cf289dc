"""Poses of unseen molecules: each 'unknown' group aligned to itself, without a template.

An unseen molecule has no template, and the model's pose head learnt only the known ones, so its
poses for them are arbitrary (81-102 degrees median error on the SHREC-like set). Each unknown group
is aligned as in reference-free subtomogram averaging (:func:`build_reference`): ``align_starts``
random members are first references; each round matches the members against every reference with the
match stage's rotation search (:func:`affinitomo.search.stack.match_stack`: SO(3) grid on the central
crop of the box at full resolution, missing wedge, local refinement) and averages them in its frame;
every ``ROUNDS_PER_CUT`` rounds only the better half of the starts (by the members' mean score) goes
on, and the best after ``align_rounds`` wins. Groups larger than ``align_max_particles`` build the
reference from a random subset of that size. Then:

- each reference is masked softly around its molecule (``align_mask``, :func:`reference_mask`);
- the poses given out are the likelihood-weighted mean over the coarse grid's cell around the best
  pose (``align_pose_mean``, :func:`affinitomo.search.refine.posterior_mean_poses`);
- every member goes to the group whose reference it matches best, in rounds with each reference
  made again from its members (``align_reassign``, ``align_reassign_rounds``, :func:`group_reference`);
  optionally by cross-validated half references (``align_reassign_halves``, off by default,
  :func:`cross_validated_choice`);
- after the competition with the known classes (:mod:`affinitomo.averaging.compete`), a group whose
  members changed by at least ``REFRESH_FRACTION`` gets its reference built anew (``align_refresh``,
  :func:`refresh_groups`).

Why, on the SHREC-like set (``benchmarks/bench_shrec.py``, ``benchmarks/bench_small_poses.py``;
docs/benchmarks.md, "SHREC-like set, end to end", "How the cluster stage's defaults were chosen"):
the crop search keeps the orientation of a small molecule that the box binned by 2 loses (100
1s3x particles as one group at SNR 0.1: 140 -> 12.8 degrees); masking took 1s3x from 12.4 to 6.0 degrees at SNR 0.1 and
from 154 to 10.2 at SNR 0.03, at half the time; 8 starts halved every 2 rounds avoid a reference that
superimposes both hands of a pseudo two-fold (seeds 0-3 on a group of 90: 23.4/12.6/10.7/14.1
degrees with 3 starts, 10.7-11.4 with 8, at ~100 s instead of ~50 s); the posterior mean of a broad
likelihood beats its maximum (10.2 -> 9.5 degrees on 100 1s3x at SNR 0.03); the rounds separate
near-twins that one reassignment leaves mixed (3gl1/3h84 at SNR 0.03 split 2: ARI 0.79 -> 0.98); the
refresh undoes the fixed point of a reference built before the competition grew its group (10.8 ->
9.6 degrees). Soft (maximum-likelihood) averaging did no better (10.8 against 10.2), so references
are averages in the best poses; the floor for 1s3x at SNR 0.03 is the particles' noise (their average
in the true poses gives 8.5 degrees, every averaging remedy 10.0-11.6; docs/benchmarks.md, "What limits
the unseen 1s3x at SNR 0.03", "Tried and not adopted"). Cost: about 100-170 s per group of ~100
particles on 2 CPU cores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from affinitomo.errors import InputError
from affinitomo.options import from_known_keys

log = logging.getLogger(__name__)

#: Particles matched against references per call (bounds the memory of the stack rows read).
CHUNK = 2048
#: Threshold of :func:`reference_mask`: standard deviations of the low-passed background.
MASK_SIGMAS = 2.0
#: Width (voxels) of the mask's cosine edge.
MASK_EDGE = 3.0
#: Rounds between two cuts of :func:`build_reference`'s starts to the better half.
ROUNDS_PER_CUT = 2
#: Fraction of a group's members that must have changed for :func:`refresh_groups` to build its reference anew.
REFRESH_FRACTION = 0.1


@dataclass
class AlignOptions:
    """Reference-free alignment of the unknown groups (keys prefixed ``align_`` in ``--options``)."""

    align_unknown: bool = True  # needs the subtomogram stack (--stack)
    align_starts: int = 8  # random first references, halved every ROUNDS_PER_CUT rounds (build_reference)
    align_rounds: int = 4
    align_max_particles: int = 150
    align_min_particles: int = 10  # smaller groups keep the model's poses
    align_resolution: float = 20.0  # Å: the search's working resolution (as the match stage)
    align_wedge: list[float] | None = None  # tilt range [min, max] of the missing wedge; None: [-60, 60]
    align_no_wedge: bool = False
    align_mask: bool = True  # mask each reference around its molecule (reference_mask) before matching
    align_pose_mean: bool = True  # poses: the likelihood-weighted mean around the best (refine.posterior_mean_poses)
    align_reassign: bool = True  # each member of an aligned group goes to the group whose reference it matches best
    align_reassign_rounds: int = 5  # at most this many reassignments, each with references made again; until none moves
    align_reassign_halves: bool = False  # reassign by cross-validated half references (cross_validated_choice)
    align_compete: bool = True  # known classes' averages and unknown groups' references compete (averaging.compete)
    align_refresh: bool = True  # after the competition, a group whose members changed: reference built anew (refresh_groups)
    align_regroup: bool = True  # regroup the unknown particles by scores against their subgroups' references
    align_regroup_resolution: float = 1.0  # Louvain resolution of the over-split that makes those references
    align_regroup_references: int = 16  # at most this many references (the largest subgroups)
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: Any = None) -> "AlignOptions":
        opts = from_known_keys(cls, values, source, "an alignment option")
        for name in ("align_starts", "align_rounds", "align_max_particles", "align_min_particles",
                     "align_reassign_rounds", "align_regroup_references"):
            value = getattr(opts, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(source, name, f"a positive integer, got {value!r}")
        for name in ("align_unknown", "align_no_wedge", "align_mask", "align_pose_mean", "align_reassign",
                     "align_reassign_halves", "align_compete", "align_refresh", "align_regroup"):
            if not isinstance(getattr(opts, name), bool):
                raise InputError(source, name, f"true or false, got {getattr(opts, name)!r}")
        if not isinstance(opts.align_resolution, (int, float)) or not opts.align_resolution > 0:
            raise InputError(source, "align_resolution", f"a positive number of Å, got {opts.align_resolution!r}")
        if not isinstance(opts.align_regroup_resolution, (int, float)) or not opts.align_regroup_resolution > 0:
            raise InputError(source, "align_regroup_resolution",
                             f"a positive Louvain resolution, got {opts.align_regroup_resolution!r}")
        wedge = opts.align_wedge
        if wedge is not None and (not isinstance(wedge, (list, tuple)) or len(wedge) != 2
                                  or not all(isinstance(v, (int, float)) for v in wedge)
                                  or not -90 <= wedge[0] < wedge[1] <= 90):
            raise InputError(source, "align_wedge", f"[min, max] tilt angles in degrees within [-90, 90], got {wedge!r}")
        return opts

    def search(self) -> Any:
        from affinitomo.search.stack import SearchOptions

        wedge = None if self.align_no_wedge else tuple(self.align_wedge or (-60.0, 60.0))
        return SearchOptions(resolution=float(self.align_resolution), wedge=wedge, pose_mean=self.align_pose_mean)


@dataclass
class AlignedGroup:
    """One unknown group aligned to itself: its members, their poses against its reference, and the reference."""

    rows: np.ndarray  # stack rows of the members, increasing
    rotation: np.ndarray  # (len(rows), 3, 3) each member's pose against the reference
    score: float  # the members' mean score against the reference
    reference: np.ndarray  # the group's (masked) reference volume
    moved_in: int  # members that came from another group (reassignment, competition)


def _as_reference(volume: np.ndarray) -> np.ndarray:
    """Zero background (median of the faces), unit standard deviation, as the match stage's templates."""
    from affinitomo.density.filters import background

    v = np.asarray(volume, dtype=np.float64)
    v = v - background(v)
    std = float(v.std())
    return (v / (std if std > 0 else 1.0)).astype(np.float32)


def reference_mask(reference: np.ndarray, voxel_size: float, resolution: float) -> np.ndarray | None:
    """A soft mask around the molecule of a noisy reference, or None where none stands out.

    The reference low-passed to ``resolution`` is thresholded at ``MASK_SIGMAS`` standard
    deviations above the median of its outer shell (r > 0.4 box: background); of the connected
    blobs, the one with most density inside the central sphere (r < box/4) is kept, grown by half
    the resolution and given a cosine edge of ``MASK_EDGE`` voxels. None when nothing passes the
    threshold or the blob fills more than half the box (then there is no background to remove).
    """
    from scipy import ndimage

    from affinitomo.density.filters import lowpass

    n = reference.shape[-1]
    low = lowpass(np.asarray(reference, dtype=np.float64), voxel_size, resolution)
    r = np.sqrt(((np.indices(reference.shape) - n // 2) ** 2).sum(0))
    outer = low[r > 0.4 * n]
    level = float(np.median(outer))
    blobs, count = ndimage.label(low > level + MASK_SIGMAS * outer.std())
    if count == 0:
        return None
    inside = ndimage.sum(np.where(r < n / 4, low - level, 0.0), blobs, index=np.arange(1, count + 1))
    keep = ndimage.binary_dilation(blobs == 1 + int(np.argmax(inside)),
                                   iterations=max(1, int(np.ceil(resolution / voxel_size / 2))))
    if keep.mean() > 0.5:
        return None
    d = ndimage.distance_transform_edt(~keep)
    return np.where(d < MASK_EDGE, 0.5 * (1 + np.cos(np.pi * d / MASK_EDGE)), 0.0)


def masked_reference(volume: np.ndarray, voxel_size: float, options: AlignOptions) -> np.ndarray:
    """:func:`_as_reference` of the volume, multiplied by its :func:`reference_mask` with ``align_mask``."""
    reference = _as_reference(volume)
    if not options.align_mask:
        return reference
    mask = reference_mask(reference, voxel_size, options.align_resolution)
    return reference if mask is None else _as_reference(reference * mask)


def average_in_frame(volumes: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Mean of the volumes each turned by the inverse of its pose (into the reference's frame)."""
    from affinitomo.averaging.averages import class_averages

    return class_averages(volumes, np.ones(len(volumes), dtype=np.int64), rotations)[1][0]


def reference_rows(rows: np.ndarray, options: AlignOptions) -> np.ndarray:
    """``rows``, or a seeded random subset of ``4 * align_max_particles`` of them (sorted) where there
    are more: enough for an average of a group or class, and a bound on what is read."""
    cap = 4 * options.align_max_particles
    if rows.size <= cap:
        return rows
    return np.sort(np.random.default_rng(options.seed).choice(rows, cap, replace=False))


def group_reference(stack: Any, rows: np.ndarray, rotations: np.ndarray, voxel_size: float,
                    options: AlignOptions) -> np.ndarray:
    """The masked average of ``stack[rows]`` turned by their poses ``rotations`` (len(rows), 3, 3) into
    the reference's frame (:func:`reference_rows` of them)."""
    keep = np.isin(rows, reference_rows(rows, options))
    return masked_reference(average_in_frame(np.asarray(stack[rows[keep]], dtype=np.float32), rotations[keep]),
                            voxel_size, options)


def _search_radius(box: int, voxel_size: float, max_shift: float) -> np.ndarray:
    """The radius (Å) given to the search for a reference, as a template's radius would be: the
    largest that :func:`affinitomo.search.stack.coarse_kinds` searches on the central crop at full
    resolution (a quarter of the box less the shifts; boxes from 32), 0.3 of the box below 32."""
    from affinitomo.search.stack import crop_radius

    return np.array([crop_radius(box, max_shift) * voxel_size if box >= 32 else 0.3 * box * voxel_size])


def build_reference(volumes: np.ndarray, voxel_size: float, options: AlignOptions | None = None,
                    starts: int | None = None, device: str = "cpu",
                    average: Callable[[np.ndarray, Any, np.ndarray], np.ndarray] | None = None,
                    ) -> tuple[np.ndarray, float]:
    """(reference, mean score of the members used) of a group: ``starts`` random starts (default
    ``align_starts``) refined by rounds of matching and averaging, the better half (rounded up) kept
    after every ``ROUNDS_PER_CUT`` rounds (successive halving); the best after ``align_rounds``.

    ``average(volumes, found, reference)`` makes the next reference from the members, the
    ``match_stack`` result against the current one and that reference; by default the members'
    mean in their best poses (:func:`average_in_frame`). ``benchmarks/bench_small_poses.py --soft``
    passes a soft (likelihood-weighted) average over poses around the best, which did no better
    (docs/benchmarks.md, "Tried and not adopted": "Soft averaging does not help")."""
    from affinitomo.search.stack import match_stack

    opts = options or AlignOptions()
    volumes = np.asarray(volumes, dtype=np.float32)
    n = len(volumes)
    search = replace(opts.search(), pose_mean=False)  # averages in the best poses (a soft average did no better)
    radius = _search_radius(volumes.shape[-1], voxel_size, search.max_shift)
    rng = np.random.default_rng(opts.seed)
    build = rng.choice(n, opts.align_max_particles, replace=False) if n > opts.align_max_particles else np.arange(n)
    references = [masked_reference(volumes[build[rng.integers(len(build))]], voxel_size, opts)
                  for _ in range(starts or opts.align_starts)]
    scores = np.zeros(len(references))
    for round_ in range(opts.align_rounds):
        if round_ and round_ % ROUNDS_PER_CUT == 0 and len(references) > 1:
            keep = np.argsort(-scores, kind="stable")[:(len(references) + 1) // 2]
            log.info("group of %d: round %d, kept %d of %d starts (mean scores %s)", n, round_, keep.size,
                     len(references), np.round(scores, 4).tolist())
            references, scores = [references[i] for i in keep], scores[keep]
        for i, reference in enumerate(references):
            found = match_stack(volumes[build], reference[None], voxel_size, radius, search, device=device,
                                progress=False)
            scores[i] = float(found.scores[:, 0].mean())
            mean = (average(volumes[build], found, reference) if average is not None
                    else average_in_frame(volumes[build], found.matrices[:, 0]))
            references[i] = masked_reference(mean, voxel_size, opts)
    best = int(np.argmax(scores))
    log.info("group of %d: best of %d final starts, mean score %.4f", n, len(references), scores[best])
    return references[best], float(scores[best])


def match_references(stack: Any, rows: np.ndarray, references: np.ndarray, voxel_size: float,
                     options: AlignOptions, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(scores (len(rows), R), rotations (len(rows), R, 3, 3)): each row of ``stack`` matched against
    each reference (best NCC over rotations and shifts), read ``CHUNK`` rows at a time."""
    from affinitomo.search.stack import match_stack

    radius = np.repeat(_search_radius(references.shape[-1], voxel_size, options.search().max_shift), len(references))
    scores = np.zeros((len(rows), len(references)))
    rotations = np.zeros((len(rows), len(references), 3, 3))
    for start in range(0, len(rows), CHUNK):
        part = rows[start:start + CHUNK]
        found = match_stack(np.asarray(stack[part], dtype=np.float32), references, voxel_size, radius,
                            options.search(), device=device, progress=False)
        scores[start:start + len(part)], rotations[start:start + len(part)] = found.scores, found.matrices
    return scores, rotations


def match_own_groups(stack: Any, rows: np.ndarray, index: np.ndarray, references: list[np.ndarray],
                     voxel_size: float, options: AlignOptions, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """:func:`match_references`'s (scores, rotations) with each row matched against its own group's
    reference only (``index``: the group index per row); the other entries are 0."""
    scores = np.zeros((len(rows), len(references)))
    rotations = np.zeros((len(rows), len(references), 3, 3))
    for i in np.unique(index):
        mine = index == i
        scores[mine, i:i + 1], rotations[mine, i:i + 1] = match_references(
            stack, rows[mine], references[i][None], voxel_size, options, device)
    return scores, rotations


def split_halves(groups: np.ndarray, seed: int) -> np.ndarray:
    """0 or 1 per entry of ``groups``: each group's members cut at random into two halves that differ
    by at most one member (seeded)."""
    rng = np.random.default_rng(seed)
    half = np.zeros(len(groups), dtype=np.int64)
    for g in np.unique(groups):
        members = rng.permutation(np.flatnonzero(groups == g))
        half[members[1::2]] = 1
    return half


def cross_validated_choice(stack: Any, rows: np.ndarray, groups: np.ndarray, rotations: np.ndarray,
                           half: np.ndarray, references: list[np.ndarray], voxel_size: float, options: AlignOptions,
                           device: str = "cpu") -> np.ndarray:
    """The group (index into ``references``) each row prefers when no reference contains it.

    ``groups``: the group index per row; ``rotations`` (len(rows), G, 3, 3): each row's pose against
    each group's reference; ``half``: 0 or 1 per row (:func:`split_halves`). Every group's half k
    is averaged at its members' poses against their own group (:func:`group_reference`); a row of
    group g in half k is matched against the other half of g and half k of every other group, so
    each candidate holds about half a group and none holds the row. A group's reference that
    contains its member scores that member higher the fewer members it has (the member's own noise
    correlates with it), which kept a small group of one molecule apart from a larger group of the
    same molecule; see :func:`align_unknown_groups`. Where a half is empty, that group's other half
    stands in (a row's own group: its full ``references`` entry). A group left without members is
    no candidate: its reference is that of members who have left it, and would pull them back.
    """
    alive = [i for i in range(len(references)) if np.any(groups == i)]
    halves: dict[tuple[int, int], np.ndarray] = {}
    for i in alive:
        for k in (0, 1):
            mine = (groups == i) & (half == k)
            if mine.any():
                halves[i, k] = group_reference(stack, rows[mine], rotations[mine, i], voxel_size, options)
    choice = groups.copy()
    for i in alive:
        for k in (0, 1):
            mine = (groups == i) & (half == k)
            if not mine.any():
                continue
            candidates = [halves.get((i, 1 - k), references[i]) if j == i
                          else halves.get((j, k), halves.get((j, 1 - k))) for j in alive]
            scores, _ = match_references(stack, rows[mine], np.stack(candidates), voxel_size, options, device)
            choice[mine] = np.asarray(alive)[scores.argmax(axis=1)]
    return choice


def align_unknown_groups(stack: Any, groups: np.ndarray, voxel_size: float, options: AlignOptions,
                         device: str = "cpu") -> tuple[dict[int, AlignedGroup], np.ndarray]:
    """Align every group (``groups``: an id per stack row, -1 for rows of no unknown group) of at
    least ``align_min_particles`` members; with ``align_reassign`` each of their members then goes
    to the group whose reference it matches best, at that match's pose, in up to
    ``align_reassign_rounds`` rounds with the references made again from the groups in between
    (:func:`group_reference`), until none moves. The references returned are those of the last match.
    With ``align_reassign_halves`` the group each member goes to is chosen against references that
    do not contain it (:func:`cross_validated_choice`, halves fixed by :func:`split_halves` of the
    groups before the first round), its pose against its group's full reference
    (:func:`match_own_groups`): a round then costs about one matching and 1/G of another
    (G groups), against one matching.

    Returns (per group id its :class:`AlignedGroup`; the groups after reassignment).
    """
    from affinitomo.progress import progress_bar

    groups = np.asarray(groups, dtype=np.int64)
    ids = [int(g) for g in np.unique(groups[groups >= 0]) if np.sum(groups == g) >= options.align_min_particles]
    if not ids:
        return {}, groups
    references = []
    for g in progress_bar(ids, desc="align unknown groups", unit="group", disable=len(ids) < 2):
        members = np.flatnonzero(groups == g)
        reference, score = build_reference(np.asarray(stack[members], dtype=np.float32), voxel_size, options,
                                           device=device)
        log.info("unknown group %d: reference from %d particles, score %.3f", g, members.size, score)
        references.append(reference)
    rows = np.flatnonzero(np.isin(groups, ids))
    own = np.searchsorted(ids, groups[rows])
    if options.align_reassign and len(ids) > 1:
        best = own
        half = split_halves(own, options.seed) if options.align_reassign_halves else None
        for r in range(options.align_reassign_rounds):
            if half is None:
                scores, rotations = match_references(stack, rows, np.stack(references), voxel_size, options, device)
                choice = scores.argmax(axis=1)
            else:  # poses against the own group's reference only; the choice by cross_validated_choice
                scores, rotations = match_own_groups(stack, rows, best, references, voxel_size, options, device)
                choice = cross_validated_choice(stack, rows, best, rotations, half, references, voxel_size, options,
                                                device)
                moving = choice != best
                if moving.any():  # their poses against the reference of the group they go to
                    scores[moving], rotations[moving] = match_own_groups(stack, rows[moving], choice[moving],
                                                                         references, voxel_size, options, device)
            moves = int(np.sum(choice != best))
            best = choice
            log.info("reassignment round %d: %d of %d particles moved to another group", r + 1, moves, rows.size)
            if not moves or r + 1 == options.align_reassign_rounds:
                break
            # the references made again from the groups as they are now
            references = [group_reference(stack, rows[best == i], rotations[best == i, i], voxel_size, options)
                          if np.any(best == i) else references[i] for i in range(len(ids))]
    else:
        scores, rotations = match_own_groups(stack, rows, own, references, voxel_size, options, device)
        best = own
    moved = int(np.sum(best != own))
    if moved:
        log.info("%d of %d particles matched another unknown group's reference best and moved to it",
                 moved, rows.size)
    out_groups = groups.copy()
    out_groups[rows] = np.asarray(ids)[best]
    out: dict[int, AlignedGroup] = {}
    for i, g in enumerate(ids):
        mine = best == i
        if mine.any():
            out[g] = AlignedGroup(rows[mine], rotations[mine, i], float(scores[mine, i].mean()), references[i],
                                  int(np.sum(mine & (own != i))))
    return out, out_groups


def refresh_groups(stack: Any, aligned: dict[int, AlignedGroup], groups: np.ndarray, voxel_size: float,
                   options: AlignOptions, device: str = "cpu") -> dict[int, AlignedGroup]:
    """:func:`align_unknown_groups`'s groups after their members changed (the competition with the known
    classes, :mod:`affinitomo.averaging.compete`; ``groups``: the group id per stack row, -1 elsewhere).

    A group whose members changed by at least ``REFRESH_FRACTION`` of its size (joined plus left)
    gets a reference built anew from its members now (:func:`build_reference`, random starts) and
    their poses against it. The reference it had was built from other members and refined from
    there, and rounds of refinement do not leave that fixed point: on the unseen 1s3x of the
    SHREC-like set (SNR 0.03, split 2), whose group grew from 76 to 101 in the competition, its members'
    median pose error was 10.7 degrees at the reference of the rounds, 10.4 and 10.3 after one and two
    more rounds from the 101, and 9.1-10.8 (mean 9.9, seeds 0-3) with references built anew
    (docs/benchmarks.md, "A group's reference built anew after the competition"). Smaller changes, and groups left with fewer than
    ``align_min_particles`` members, keep their reference and poses.
    """
    out = dict(aligned)
    for g, group in aligned.items():
        rows = np.flatnonzero(groups == g)
        changed = np.setxor1d(rows, group.rows).size
        if rows.size < options.align_min_particles or changed < REFRESH_FRACTION * rows.size:
            continue
        reference, _ = build_reference(np.asarray(stack[rows], dtype=np.float32), voxel_size, options, device=device)
        scores, rotations = match_references(stack, rows, reference[None], voxel_size, options, device)
        log.info("unknown group %d: %d members after the competition (%d before, %d changed); reference built "
                 "anew, mean score %.3f -> %.3f", g, rows.size, group.rows.size, changed, float(group.score),
                 float(scores[:, 0].mean()))
        out[g] = AlignedGroup(rows, rotations[:, 0], float(scores[:, 0].mean()), reference,
                              int(group.moved_in + np.sum(~np.isin(rows, group.rows))))
    return out
