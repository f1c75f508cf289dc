"""The missing wedge in Fourier space: masks of the measured region and scorers filtered by them.

Convention (shared with :mod:`affinitomo.simulate.tiltseries`): the specimen is tilted
about the Y axis; at tilt angle θ a projection measures the central plane of Fourier space
spanned by ``k_y`` and the direction ``(k_x, k_z) = (cos θ, sin θ)``. A frequency is measured
when the angle of its ``(k_x, k_z)`` line, ``atan(k_z / k_x)``, lies in ``[tilt_min, tilt_max]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import fft as sfft

from affinitomo.density.score import FourierScorer

FFT_WORKERS = -1  # all cores


def wedge_angles(shape: Sequence[int], rfft: bool = True) -> np.ndarray:
    """Angle (degrees, in [-90, 90]) of each frequency's (k_x, k_z) line, broadcastable to the FFT grid."""
    nz, _, nx = shape
    kz = sfft.fftfreq(nz)[:, None, None]
    kx = (sfft.rfftfreq(nx) if rfft else sfft.fftfreq(nx))[None, None, :]
    ang = np.degrees(np.arctan2(kz, kx))
    ang = np.where(ang > 90, ang - 180, ang)
    return np.where(ang < -90, ang + 180, ang)


def wedge_mask(shape: Sequence[int], tilt_min: float = -60.0, tilt_max: float = 60.0, rfft: bool = True) -> np.ndarray:
    """Missing-wedge mask (1 = measured) for the rFFT (default) or FFT of a ``[z, y, x]`` volume; shape (nz, 1, nkx)."""
    ang = wedge_angles(shape, rfft)
    inside = (ang >= tilt_min - 1e-9) & (ang <= tilt_max + 1e-9)
    if tilt_max >= 90 - 1e-9 or tilt_min <= -90 + 1e-9:  # the k_x = 0 line is at +-90: one line
        inside |= np.abs(np.abs(ang) - 90) < 1e-9
    inside[0, 0, 0] = True  # DC: every projection measures it
    return inside.astype(np.float32)


def _rfft_weights(nx: int) -> np.ndarray:
    """How many full-spectrum coefficients each rFFT column stands for (1 or 2)."""
    w = np.full(nx // 2 + 1, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w


def measured_fraction(shape: Sequence[int], mask: np.ndarray) -> float:
    """Fraction of the full spectrum kept by an rFFT mask of shape (nz, 1, nkx): variance kept of white noise."""
    w = _rfft_weights(shape[2])[None, None, :]
    return float((np.broadcast_to(mask, (shape[0], 1, mask.shape[2])) ** 2 * w).sum() / (shape[0] * shape[2]))


def apply_wedge(volume: np.ndarray, tilt_min: float = -60.0, tilt_max: float = 60.0) -> np.ndarray:
    """Remove the missing wedge from a volume in Fourier space (float32 result)."""
    mask = wedge_mask(volume.shape, tilt_min, tilt_max)
    spec = sfft.rfftn(volume, workers=FFT_WORKERS)
    spec *= mask
    return sfft.irfftn(spec, s=volume.shape, workers=FFT_WORKERS).astype(np.float32)


Wedge = tuple[float, float] | None


def wedge_filter(n: int, wedge: Wedge, device: torch.device) -> torch.Tensor:
    """rFFT mask (n, 1, n//2+1) of the measured region for tilts ``wedge`` (degrees); ones without one."""
    if wedge is None:
        return torch.ones((n, 1, n // 2 + 1), device=device)
    return torch.as_tensor(wedge_mask((n, n, n), wedge[0], wedge[1]), device=device)


def filtered_scorer(n: int, voxel_size: float, resolution: float, wedge: Wedge, device: torch.device,
                    max_shift: float | None = None) -> FourierScorer:
    """A FourierScorer whose filter is the low-pass times the wedge (spectra are ``W L x``)."""
    scorer = FourierScorer(n, voxel_size, resolution, "ncc", max_shift, device)
    scorer.filter = scorer.filter * wedge_filter(n, wedge, device)
    return scorer
