"""Display contrast for tomograms: robust percentile limits and an optional low-pass."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

DEFAULT_PERCENTILES = (1.0, 99.0)
MAX_SAMPLES = 2_000_000


def subsample(volume: np.ndarray, max_samples: int = MAX_SAMPLES) -> np.ndarray:
    """A regular-strided subsample of at most ~``max_samples`` voxels (reads little of a memmap)."""
    step = max(1, int(np.ceil((volume.size / max(1, max_samples)) ** (1 / volume.ndim))))
    return np.asarray(volume[tuple(slice(None, None, step) for _ in range(volume.ndim))], dtype=np.float32)


def contrast_limits(
    volume: np.ndarray,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    max_samples: int = MAX_SAMPLES,
) -> tuple[float, float]:
    """(low, high) display limits at the given percentiles of a voxel subsample.

    Percentiles 1-99 clip the few extreme voxels (gold beads, edge artefacts)
    that would otherwise wash out the contrast; they hold for any noise level
    because they follow the data's own distribution.
    """
    sample = subsample(volume, max_samples)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(sample, percentiles))
    if not high > low:
        high = low + 1.0
    return low, high


def lowpass(volume: np.ndarray, sigma_angstrom: float, pixel_size: float) -> np.ndarray:
    """Gaussian low-pass with a standard deviation given in Å (float32 copy)."""
    sigma = float(sigma_angstrom) / float(pixel_size)
    return gaussian_filter(np.asarray(volume, dtype=np.float32), sigma=sigma, output=np.float32)
