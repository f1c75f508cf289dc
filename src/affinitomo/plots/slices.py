"""Image grids of central slices of volumes (shared by the reconstruction and traversal plots).

A grid is drawn as one montage image (one ``imshow``), which stays fast with many panels.
"""

from __future__ import annotations

import numpy as np


def central_slice(volume: np.ndarray) -> np.ndarray:
    """The central z section ``volume[B // 2]`` (a y-x image) of a [z, y, x] volume."""
    return np.asarray(volume)[volume.shape[0] // 2]


def limits(images: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """Robust display limits (percentiles) shared by a set of images."""
    lo, hi = np.percentile(np.asarray(images, dtype=float), [low, high])
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 1e-6, float(lo) + 1e-6)


def montage(tiles: list[list[np.ndarray | None]], gap: int = 2) -> tuple[np.ndarray, int]:
    """Rows of equally sized 2D tiles (already scaled to [0, 1]; None = empty) -> (image, tile pitch).

    Gaps and empty tiles are NaN (drawn in the background colour).
    """
    size = next(t.shape[0] for row in tiles for t in row if t is not None)
    n_cols = max(len(row) for row in tiles)
    pitch = size + gap
    image = np.full((len(tiles) * pitch - gap, n_cols * pitch - gap), np.nan, dtype=np.float32)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            if tile is not None:
                image[r * pitch:r * pitch + size, c * pitch:c * pitch + size] = tile
    return image, pitch


def scaled(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``image`` mapped to [0, 1] by the display limits ``lo``, ``hi`` (clipped)."""
    return np.clip((np.asarray(image, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0)


def show_montage(ax, image: np.ndarray) -> None:
    """Draw a montage in grey on a white background, without ticks."""
    import matplotlib

    cmap = matplotlib.colormaps["gray"].with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(image), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
