"""Masks of cubic boxes."""

from __future__ import annotations

import numpy as np


def spherical_mask(box: int, radius: float) -> np.ndarray:
    """Boolean ``box^3`` mask of voxels within ``radius`` of the centre voxel ``box // 2``."""
    grid = np.arange(box) - box // 2
    r2 = grid[:, None, None] ** 2 + grid[None, :, None] ** 2 + grid[None, None, :] ** 2
    return r2 <= radius**2
