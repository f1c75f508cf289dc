"""The SNR of extracted subtomograms, estimated from the data, in the simulator's definition.

Definition (as :mod:`affinitomo.simulate.imaging` and :mod:`affinitomo.simulate.particles`):
``SNR = var(signal) / var(noise)`` pooled over every voxel of every particle box.

Estimator. The noise is stationary, with one level for the whole stack (one
tomogram, or tomograms of one noise level); the particle sits within ``radius``
of the box centre. For each particle ``i``:

- ``noise_i``: the median over the eight octants of the box of the variance of
  the voxels farther than ``radius`` from the centre. The median ignores the one
  or two corners a neighbouring particle reaches into.
- ``snr_i = (var(x_i) - noise_i) / noise_i``: signal and noise are independent.
- ``m_i = f * (mean(x_i[inner]) - mean(x_i[outer])) / sqrt(noise_i)``, ``f`` the
  fraction of the box within ``radius``: the particle's box mean above the solvent,
  in noise units; the spread of box means over particles is part of the pooled
  signal variance that per-particle normalisation removed.

``SNR = mean_i(snr_i) + var_i(m_i)``. Because the noise level is common, the
pooled ratio is the mean of the per-particle ratios, and each ratio is invariant
to that box's scale: a normalised stack (zero mean, unit std per box, as
extraction writes it) gives the same answer as the raw one, either contrast.

Bias (measured on the demo, wedge imaging, box 32, radius 16; see the report):
the estimate is about 0.8 of the tomograms' nominal SNR, the same factor at SNR
0.05, 0.2 and 0.5. Density outside ``radius`` counts as noise and is missing from
the signal: neighbours reaching into more than half the corners, the spread of
the missing wedge and the CTF, and the particle itself when ``radius`` is smaller
than it (radius 8 on the demo: about 0.4). So ``radius`` should be the largest
that leaves the particle inside; the default, half the box, leaves the corners.
"""

from __future__ import annotations

import numpy as np

from affinitomo.density.masks import spherical_mask
from affinitomo.errors import InputError

CHUNK = 256  # particles read at a time
MIN_CORNER = 8  # voxels each corner of the outer region needs at least


def octant_labels(box: int) -> np.ndarray:
    """Octant (0..7) of every voxel of a ``box^3`` box, by the signs of its offsets from the centre ``box//2``."""
    g = np.arange(box) - box // 2
    z, y, x = np.meshgrid(g >= 0, g >= 0, g >= 0, indexing="ij")
    return (4 * z + 2 * y + x).reshape(-1)


def particle_snrs(stack: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Per particle: ``snr_i`` and the box-mean contrast ``m_i`` of the module docstring."""
    n, box = stack.shape[0], stack.shape[1]
    inner = spherical_mask(box, radius).reshape(-1)
    outer = ~inner
    octant = octant_labels(box)
    corners = [np.flatnonzero(outer & (octant == k)) for k in range(8)]
    f = inner.mean()
    snr = np.empty(n)
    contrast = np.empty(n)
    for lo in range(0, n, CHUNK):
        x = np.asarray(stack[lo : lo + CHUNK], dtype=np.float64).reshape(-1, box**3)
        noise = np.median(np.stack([x[:, c].var(axis=1) for c in corners], axis=1), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            snr[lo : lo + len(x)] = (x.var(axis=1) - noise) / noise
            contrast[lo : lo + len(x)] = f * (x[:, inner].mean(axis=1) - x[:, outer].mean(axis=1)) / np.sqrt(noise)
    return snr, contrast


def estimate_snr(stack: np.ndarray, radius: float | None = None) -> float:
    """Particle-box SNR of a stack ``(N, B, B, B)`` (memmap fine) of particles within ``radius`` voxels.

    ``radius`` defaults to half the box. See the module docstring for the
    estimator and its bias. Raises :class:`InputError` when the stack is not a
    stack of cubes or ``radius`` leaves too little of the box outside it.
    """
    shape = tuple(stack.shape)
    if len(shape) != 4 or not (shape[1] == shape[2] == shape[3]) or shape[0] < 1:
        raise InputError(None, "stack", f"a stack of N >= 1 cubic boxes (N, B, B, B), got shape {shape}")
    box = shape[1]
    radius = box / 2 if radius is None else float(radius)
    if not (np.isfinite(radius) and radius > 0):
        raise InputError(None, "radius", f"a positive particle radius in voxels, got {radius}")
    outer = ~spherical_mask(box, radius).reshape(-1)
    smallest = min(int((outer & (octant_labels(box) == k)).sum()) for k in range(8))
    if smallest < MIN_CORNER:
        raise InputError(None, "radius", f"a radius leaving at least {MIN_CORNER} voxels outside it in every corner of the {box}^3 box, got {radius:g} ({smallest})")
    snr, contrast = particle_snrs(stack, radius)
    ok = np.isfinite(snr) & np.isfinite(contrast)
    if not ok.any():
        raise InputError(None, "stack", "boxes holding finite, non-constant values")
    return max(float(snr[ok].mean()) + float(np.var(contrast[ok])), 0.0)
