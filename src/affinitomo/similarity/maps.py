"""Structures to comparable maps: maps and atomic models (:mod:`affinitomo.io.structures`) on one grid.

Every map is low-pass filtered at the working resolution (anti-aliasing), resampled to
one voxel size into one cubic box with its centre of mass at the box centre ``N//2``, and
scaled to unit standard deviation (background 0). Protein density is positive.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy import ndimage

from affinitomo.density.filters import background, lowpass, mass_radius
from affinitomo.density.resample import fft_size
from affinitomo.errors import InputError
from affinitomo.io.structures import StructureMap

log = logging.getLogger(__name__)


def to_common_grid(
    maps: list[StructureMap], resolution: float, voxel_size: float, box: int | None = None, margin: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Resample maps to one cubic box of ``voxel_size``, centred on their centres of mass.

    Returns (stack (n, N, N, N) float32, radii in Å). Each map keeps a zero background (so
    that rotating with zero padding adds no edges) and is scaled to unit standard deviation;
    the scores remove the mean themselves. The box,
    unless given, holds the largest particle's diameter plus ``margin`` times its radius on
    each side (room for shifts without wrap-around).
    """
    prepared, centres, radii = [], [], []
    for m in maps:
        d = lowpass(m.density.astype(np.float32) - background(m.density), m.voxel_size, resolution)
        w = np.clip(d, 0, None).astype(np.float64)
        if w.sum() <= 0:
            raise InputError(m.source, "data", "positive protein density above the background")
        com = np.array(ndimage.center_of_mass(w))
        prepared.append(d)
        centres.append(com)
        radii.append(mass_radius(d, m.voxel_size, com))
    radii_a = np.array(radii)
    if box is None:
        extent = 2 * float(radii_a.max()) * (1 + margin)
        box = fft_size(int(math.ceil(extent / voxel_size)) + 2)
    stack = np.empty((len(maps), box, box, box), dtype=np.float32)
    c_new = np.full(3, box // 2, dtype=float)
    for i, (m, d, com) in enumerate(zip(maps, prepared, centres)):
        scale = voxel_size / m.voxel_size
        matrix = np.full(3, scale)
        offset = com - scale * c_new
        out = ndimage.affine_transform(d, matrix, offset=offset, output_shape=(box,) * 3, order=3, mode="constant", cval=0.0)
        out = out.astype(np.float32)
        std = out.std()
        if std <= 0:
            raise InputError(m.source, "data", "a map with density inside the common box")
        stack[i] = out / std
    return stack, radii_a
