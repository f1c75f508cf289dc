"""Fast drawing of large 2D scatters: points binned into an RGBA image (matplotlib draws an image in
milliseconds, 100k markers in seconds)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_dilation

RASTER_SHAPE = (360, 360)


def extent_of(xy: np.ndarray, pad: float = 0.05) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) of the finite points, padded by a fraction of the span."""
    finite = np.isfinite(xy).all(axis=1)
    if not finite.any():
        return (0.0, 1.0, 0.0, 1.0)
    lo, hi = xy[finite].min(axis=0), xy[finite].max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad * span, hi + pad * span
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def _pixels(xy: np.ndarray, extent: tuple[float, float, float, float], shape: tuple[int, int]):
    finite = np.isfinite(xy).all(axis=1)
    x0, x1, y0, y1 = extent
    col = ((xy[:, 0] - x0) / (x1 - x0) * shape[1]).astype(np.int64, copy=False) if len(xy) else np.zeros(0, int)
    row = ((xy[:, 1] - y0) / (y1 - y0) * shape[0]).astype(np.int64, copy=False) if len(xy) else np.zeros(0, int)
    keep = finite & (col >= 0) & (col < shape[1]) & (row >= 0) & (row < shape[0])
    return row[keep], col[keep], keep


def scatter_image(xy: np.ndarray, colors: np.ndarray, extent: tuple[float, float, float, float],
                  shape: tuple[int, int] = RASTER_SHAPE) -> np.ndarray:
    """RGBA image (origin lower) with each point's colour at its pixel; a later point wins a shared pixel."""
    image = np.zeros(shape + (4,), dtype=np.float32)
    row, col, keep = _pixels(np.asarray(xy, dtype=float), extent, shape)
    image[row, col] = np.asarray(colors, dtype=np.float32)[keep]
    return image


def mask_image(xy: np.ndarray, extent: tuple[float, float, float, float], rgba: tuple[float, float, float, float],
               shape: tuple[int, int] = RASTER_SHAPE) -> np.ndarray:
    """RGBA overlay marking the pixels of ``xy`` (dilated by one pixel) in ``rgba``, transparent elsewhere."""
    mask = np.zeros(shape, dtype=bool)
    row, col, _ = _pixels(np.asarray(xy, dtype=float), extent, shape)
    mask[row, col] = True
    image = np.zeros(shape + (4,), dtype=np.float32)
    image[binary_dilation(mask)] = rgba
    return image
