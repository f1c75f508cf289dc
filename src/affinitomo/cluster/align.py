"""Poses of unseen molecules: each 'unknown' group aligned to itself, without a template.

An unseen molecule has no template, and the model's pose head was trained on the known ones,
so the model's poses for it are arbitrary (81-102 degrees median error on the SHREC-like set).
Each unknown group is therefore aligned as in subtomogram averaging without a reference: a
randomly chosen member is the first reference; each round matches the members against the
current reference with the match stage's rotation search (:func:`affinitomo.match.search.match_stack`:
SO(3) grid at bin 2, missing wedge, local refinement) and averages them in its frame, which
becomes the next reference. ``starts`` random first references run independently; the one
whose members match their final reference best (mean score) wins. Groups larger than
``max_particles`` build the reference from a random subset of that size; then every member is
matched once more against the final reference.

Measured (``benchmarks/bench_shrec.py``, SNR 0.1, groups of 101-120 particles, 3 starts x 4
rounds, 2 CPU cores): median pose error 1.1 degrees for 4cr2 and 1.0 for 5mrc (the model: 99 and 102),
5.6 for 1u6g in a group only 52 % pure (81); all starts reached the same score. 1s3x, which is
nearly two-fold symmetric at this resolution, stays wrong (159), as with its template. About
100-170 s per group of ~100 particles on 2 cores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from affinitomo.errors import InputError
from affinitomo.options import from_known_keys

log = logging.getLogger(__name__)


@dataclass
class AlignOptions:
    """Reference-free alignment of the unknown groups (keys prefixed ``align_`` in ``--options``)."""

    align_unknown: bool = True  # needs the subtomogram stack (--stack)
    align_starts: int = 3
    align_rounds: int = 4
    align_max_particles: int = 150
    align_min_particles: int = 10  # smaller groups keep the model's poses
    align_resolution: float = 20.0  # Å: the search's working resolution (as the match stage)
    align_wedge: list[float] | None = None  # tilt range [min, max] of the missing wedge; None: [-60, 60]
    align_no_wedge: bool = False
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: Any = None) -> "AlignOptions":
        opts = from_known_keys(cls, values, source, "an alignment option")
        for name in ("align_starts", "align_rounds", "align_max_particles", "align_min_particles"):
            value = getattr(opts, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(source, name, f"a positive integer, got {value!r}")
        if not isinstance(opts.align_resolution, (int, float)) or not opts.align_resolution > 0:
            raise InputError(source, "align_resolution", f"a positive number of Å, got {opts.align_resolution!r}")
        wedge = opts.align_wedge
        if wedge is not None and (not isinstance(wedge, (list, tuple)) or len(wedge) != 2
                                  or not all(isinstance(v, (int, float)) for v in wedge)
                                  or not -90 <= wedge[0] < wedge[1] <= 90):
            raise InputError(source, "align_wedge", f"[min, max] tilt angles in degrees within [-90, 90], got {wedge!r}")
        return opts

    def search(self) -> Any:
        from affinitomo.match.search import SearchOptions

        wedge = None if self.align_no_wedge else tuple(self.align_wedge or (-60.0, 60.0))
        return SearchOptions(resolution=float(self.align_resolution), wedge=wedge)


def _as_reference(volume: np.ndarray) -> np.ndarray:
    """Zero background (median of the faces), unit standard deviation, as the match stage's templates."""
    from affinitomo.similarity.maps import background

    v = np.asarray(volume, dtype=np.float64)
    v = v - background(v)
    std = float(v.std())
    return (v / (std if std > 0 else 1.0)).astype(np.float32)


def average_in_frame(volumes: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Mean of the volumes each turned by the inverse of its pose (into the reference's frame)."""
    from affinitomo.cluster.averages import class_averages

    return class_averages(volumes, np.ones(len(volumes), dtype=np.int64), rotations)[1][0]


def align_group(volumes: np.ndarray, voxel_size: float, options: AlignOptions | None = None,
                device: str = "cpu") -> tuple[np.ndarray, np.ndarray, float]:
    """(rotation (N, 3, 3) per member, final reference, mean final score) of one group."""
    from affinitomo.match.search import match_stack

    opts = options or AlignOptions()
    volumes = np.asarray(volumes, dtype=np.float32)
    n, box = len(volumes), volumes.shape[-1]
    radius = np.array([0.3 * box * voxel_size])  # sets the automatic angular step, as a template's radius would
    search = opts.search()
    rng = np.random.default_rng(opts.seed)
    build = rng.choice(n, opts.align_max_particles, replace=False) if n > opts.align_max_particles else np.arange(n)
    best: tuple[float, np.ndarray] | None = None
    for start in range(opts.align_starts):
        reference = _as_reference(volumes[build[rng.integers(len(build))]])
        for _ in range(opts.align_rounds):
            found = match_stack(volumes[build], reference[None], voxel_size, radius, search, device=device,
                                progress=False)
            reference = _as_reference(average_in_frame(volumes[build], found.matrices[:, 0]))
        score = float(found.scores[:, 0].mean())
        log.info("group of %d: start %d, mean score %.3f", n, start + 1, score)
        if best is None or score > best[0]:
            best = (score, reference)
    found = match_stack(volumes, best[1][None], voxel_size, radius, search, device=device, progress=False)
    return found.matrices[:, 0], best[1], float(found.scores[:, 0].mean())


def align_unknown_groups(stack: Any, numbers: np.ndarray, first_unknown: int, voxel_size: float,
                         options: AlignOptions, device: str = "cpu") -> dict[int, dict[str, Any]]:
    """Align every unknown group (class numbers >= ``first_unknown``) of at least ``align_min_particles``.

    Returns per group number: ``rows`` (stack rows), ``rotation`` (per row) and ``score``.
    """
    from tqdm import tqdm

    numbers = np.asarray(numbers, dtype=np.int64)
    groups = [int(g) for g in np.unique(numbers[numbers >= first_unknown])
              if np.sum(numbers == g) >= options.align_min_particles]
    out: dict[int, dict[str, Any]] = {}
    for g in tqdm(groups, desc="align unknown groups", unit="group", disable=len(groups) < 2):
        rows = np.flatnonzero(numbers == g)
        rotation, _, score = align_group(np.asarray(stack[rows], dtype=np.float32), voxel_size, options, device)
        log.info("unknown group %d: %d particles aligned, mean score %.3f", g, rows.size, score)
        out[g] = {"rows": rows, "rotation": rotation, "score": score}
    return out
