"""Rotation sets for searching SO(3): near-uniform global grids, local neighbourhoods, distinct best rotations.

Matrices are in the package convention (:mod:`affinitomo.geometry`): ``A`` acts on
(x, y, z) column vectors and rotates the reference into the particle.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

from affinitomo.geometry import angular_distance, euler_to_matrix

#: Bounds for the automatic angular step (degrees): finer is never needed for the coarse
#: global search (refinement follows), coarser misses the basin of the right pose.
MIN_AUTO_STEP = 4.0
MAX_AUTO_STEP = 30.0


def auto_angular_step(resolution: float, radius: float) -> float:
    """Angular step (degrees) at which a point at ``radius`` moves by ``resolution``.

    ``degrees(resolution / radius)``: two rotations closer than this are
    indistinguishable at that resolution. Both in Å. Clipped to
    [``MIN_AUTO_STEP``, ``MAX_AUTO_STEP``].
    """
    if resolution <= 0 or radius <= 0:
        raise ValueError("resolution and radius must be positive")
    return float(np.clip(math.degrees(resolution / radius), MIN_AUTO_STEP, MAX_AUTO_STEP))


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` near-uniform unit vectors on the sphere (Fibonacci lattice), shape (n, 3)."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + math.sqrt(5)) * i
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def so3_grid(step: float) -> np.ndarray:
    """A near-uniform grid of rotations with about ``step`` degrees between neighbours.

    Euler ZYZ angles with (rot, tilt) on a Fibonacci lattice of the sphere (about
    ``4 pi / step^2`` directions) and psi uniform in ``ceil(360 / step)`` steps: uniform
    directions times uniform in-plane angles is uniform (Haar) on SO(3). About
    ``8 pi^2 / step^3`` rotations (step in radians). Returns (n, 3, 3).
    """
    if not 0 < step <= 180:
        raise ValueError(f"angular step must be in (0, 180] degrees, got {step}")
    s = math.radians(step)
    n_dir = max(1, int(math.ceil(4 * math.pi / (s * s))))
    n_psi = max(1, int(math.ceil(360.0 / step)))
    d = fibonacci_directions(n_dir)
    rot = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    tilt = np.degrees(np.arccos(np.clip(d[:, 2], -1, 1)))
    psi = np.arange(n_psi) * (360.0 / n_psi)
    rr, pp = np.repeat(rot, n_psi), np.tile(psi, n_dir)
    tt = np.repeat(tilt, n_psi)
    return euler_to_matrix(rr, tt, pp)


def local_axis_steps(center: np.ndarray, step: float) -> np.ndarray:
    """The 6 rotations ``exp(+-step e_i) @ center`` (i = x, y, z; step in degrees)."""
    offsets = np.concatenate([np.eye(3), -np.eye(3)]) * math.radians(step)
    return Rotation.from_rotvec(offsets).as_matrix() @ np.asarray(center, dtype=float)


def distinct(grid: np.ndarray, values: np.ndarray, rots: np.ndarray, k: int, min_angle: float) -> np.ndarray:
    """Columns (B, k) of the first ``k`` entries (sorted by value) at least ``min_angle`` apart; -1 = none.

    Row b holds ``keep`` candidates: scores ``values[b]`` and rotations ``grid[rots[b]]``.
    """
    b, keep = rots.shape
    chosen = np.full((b, k), -1, dtype=int)
    count = np.zeros(b, dtype=int)
    order = np.argsort(-values, axis=1)
    rows = np.arange(b)
    for j in range(keep):
        if (count >= k).all():
            break
        col = order[:, j]
        mats = grid[rots[rows, col]]
        ok = count < k
        for c in range(k):
            has = chosen[:, c] >= 0
            if has.any():
                prev = grid[rots[rows[has], chosen[has, c]]]
                near = np.zeros(b, dtype=bool)
                near[has] = angular_distance(prev, mats[has]) < min_angle
                ok &= ~near
        chosen[rows[ok], count[ok]] = col[ok]
        count += ok
    return chosen
