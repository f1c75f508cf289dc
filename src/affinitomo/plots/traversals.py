"""Latent traversals: decoded central slices as one latent (or pose) dimension varies."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affinitomo.io.atomic import atomic_path
from affinitomo.plots.slices import central_slice, limits, montage, scaled, show_montage


def plot_traversals(png_path: str | Path, volumes: np.ndarray, rows: list[str], offsets: np.ndarray,
                    title: str = "Latent traversals") -> Path:
    """Grid of ``volumes`` (R, S, B, B, B): row r varies dimension ``rows[r]`` by ``offsets`` (in SDs).

    All panels share one display range so that changes along a row, and between rows, are visible.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, steps = volumes.shape[:2]
    images = np.array([[central_slice(volumes[r, s]) for s in range(steps)] for r in range(n_rows)])
    lo, hi = limits(images)
    image, pitch = montage([[scaled(images[r, s], lo, hi) for s in range(steps)] for r in range(n_rows)])
    height = 0.8 * n_rows + 1.0
    fig, ax = plt.subplots(figsize=(height * image.shape[1] / image.shape[0] + 1.5, height), dpi=120)
    show_montage(ax, image)
    ax.set_yticks([r * pitch + pitch / 2 for r in range(n_rows)], rows, fontsize=7)
    ax.set_xticks([s * pitch + pitch / 2 for s in range(steps)], [f"{o:+.1f} sd" for o in offsets], fontsize=7)
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(png_path)
