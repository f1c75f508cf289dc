"""Real-space and Fourier filters of density boxes: background level, mass radius, low-pass."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage


#: Fraction of the (positive) density mass inside the particle radius.
RADIUS_MASS_FRACTION = 0.95


def background(density: np.ndarray) -> float:
    """The background level of a box: the median of its six faces."""
    faces = [density[0], density[-1], density[:, 0], density[:, -1], density[:, :, 0], density[:, :, -1]]
    return float(np.median(np.concatenate([f.ravel() for f in faces])))


def mass_radius(density: np.ndarray, voxel_size: float, centre: np.ndarray | None = None) -> float:
    """Radius (Å) holding ``RADIUS_MASS_FRACTION`` of the positive density above background."""
    w = np.clip(density - background(density), 0, None).astype(np.float64)
    if w.sum() <= 0:
        return voxel_size
    idx = np.indices(density.shape).reshape(3, -1).T
    ww = w.ravel()
    c = (idx * ww[:, None]).sum(0) / ww.sum() if centre is None else np.asarray(centre, float)
    r = np.sqrt(((idx - c) ** 2).sum(1))
    order = np.argsort(r)
    cum = np.cumsum(ww[order]) / ww.sum()
    return float(r[order][np.searchsorted(cum, RADIUS_MASS_FRACTION)] * voxel_size + voxel_size / 2)


def lowpass(density: np.ndarray, voxel_size: float, resolution: float) -> np.ndarray:
    """Soft (Gaussian) low-pass so that the amplitude at 1/resolution is 1/2."""
    # Gaussian transfer exp(-2 pi^2 sigma^2 f^2) = 1/2 at f = 1/resolution.
    sigma_a = resolution * math.sqrt(math.log(2) / 2) / math.pi
    return ndimage.gaussian_filter(density, sigma_a / voxel_size, mode="nearest")


def apply_filter(volumes: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
    """Real-space volumes (B, n, n, n) filtered by an rFFT-layout filter."""
    n = volumes.shape[-1]
    spec = torch.fft.rfftn(volumes.to(torch.float32), dim=(-3, -2, -1)) * filt
    return torch.fft.irfftn(spec, s=(n, n, n), dim=(-3, -2, -1))
