"""Placing particles in a tomogram: random positions without overlap, uniform SO(3) poses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from affinitomo.errors import InputError
from affinitomo.geometry import random_matrices

BATCH = 256  # candidate positions drawn at once


@dataclass
class Placement:
    """Particles of one tomogram: class index (into the class list), integer centre ``[z, y, x]``, pose A."""

    class_index: np.ndarray  # (n,) int
    centres: np.ndarray  # (n, 3) int, voxel indices [z, y, x]
    matrices: np.ndarray  # (n, 3, 3), RELION A: rotates the reference into the particle

    def __len__(self) -> int:
        return len(self.class_index)


def place_particles(
    shape: Sequence[int],
    radii: Sequence[float],
    counts: Sequence[int],
    rng: np.random.Generator,
    *,
    margins: Sequence[float] | None = None,
    gap: float = 1.0,
    max_tries: int = 20000,
) -> Placement:
    """Random sequential placement of non-overlapping spheres, then uniform random rotations.

    ``radii[c]`` is the bounding radius (voxels) of class c; two particles are at
    least ``r_i + r_j + gap`` apart, so their densities never touch. Centres are
    integer voxels at least ``margins[c]`` (default: the radius) from every face.
    Larger classes are placed first (packs better); rows come out shuffled.
    Raises :class:`InputError` when the particles do not fit.
    """
    shape_t = tuple(int(s) for s in shape)
    shape = np.asarray(shape_t, dtype=int)
    radii = np.asarray(radii, dtype=float)
    margins = np.ceil(radii if margins is None else np.asarray(margins, dtype=float)).astype(int)
    classes = np.repeat(np.arange(len(radii)), counts)
    order = classes[np.argsort(-radii[classes], kind="stable")]
    centres = np.zeros((len(order), 3), dtype=int)
    placed_r = np.zeros(len(order))
    for i, c in enumerate(order):
        lo, hi = margins[c], shape - margins[c]
        if np.any(hi <= lo):
            raise InputError(None, "shape", f"a tomogram larger than 2 x {margins[c]} voxels in every axis to hold class {int(c)}, got {shape_t}")
        for _ in range(max(1, max_tries // BATCH)):
            cand = rng.integers(lo, hi, size=(BATCH, 3))
            if i:
                d = np.linalg.norm(cand[:, None, :] - centres[None, :i, :], axis=-1)
                ok = np.all(d >= placed_r[None, :i] + radii[c] + gap, axis=1)
            else:
                ok = np.ones(BATCH, bool)
            hit = np.flatnonzero(ok)
            if len(hit):
                centres[i] = cand[hit[0]]
                placed_r[i] = radii[c]
                break
        else:
            raise InputError(
                None, "per-class",
                f"a particle count that fits without overlap: placed {i} of {len(order)} particles in a "
                f"{shape_t} tomogram; use fewer particles per class or a larger tomogram",
            )
    perm = rng.permutation(len(order))
    return Placement(order[perm].astype(int), centres[perm], random_matrices(len(order), rng))


def min_clearance(placement: Placement, radii: Sequence[float]) -> float:
    """Smallest ``distance - r_i - r_j`` over all particle pairs (inf for fewer than two)."""
    if len(placement) < 2:
        return float("inf")
    r = np.asarray(radii, float)[placement.class_index]
    c = placement.centres.astype(float)
    d = np.linalg.norm(c[:, None] - c[None], axis=-1) - r[:, None] - r[None]
    np.fill_diagonal(d, np.inf)
    return float(d.min())
