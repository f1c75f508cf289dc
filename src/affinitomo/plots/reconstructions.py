"""Input vs reconstruction: central slices of a few particles per group, side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affinitomo.io.atomic import atomic_path
from affinitomo.plots.slices import central_slice, limits, montage, scaled, show_montage


def plot_reconstructions(png_path: str | Path, groups: list[tuple[str, np.ndarray, np.ndarray]]) -> Path:
    """One row per group ``(name, inputs (n,B,B,B), recons (n,B,B,B))``: input | reconstruction pairs.

    Inputs are normalised as in training; each pair shares its display limits (1-99 percentiles of
    the input), so the reconstruction's contrast is comparable with its input.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_row = max(len(g[1]) for g in groups)
    tiles = []
    for _, inputs, recons in groups:
        row: list[np.ndarray | None] = []
        for k in range(per_row):
            if k < len(inputs):
                img_in, img_out = central_slice(inputs[k]), central_slice(recons[k])
                lo, hi = limits(img_in)
                row += [scaled(img_in, lo, hi), scaled(img_out, lo, hi)]
            else:
                row += [None, None]
        tiles.append(row)
    image, pitch = montage(tiles)
    height = 0.9 * len(groups) + 1.0
    fig, ax = plt.subplots(figsize=(height * image.shape[1] / image.shape[0] + 2.0, height), dpi=120)
    show_montage(ax, image)
    ax.set_yticks([r * pitch + pitch / 2 for r in range(len(groups))], [g[0] for g in groups], fontsize=7)
    ax.set_xticks([c * pitch + pitch / 2 for c in range(2 * per_row)], ["input", "recon."] * per_row,
                  fontsize=6, rotation=90)
    ax.tick_params(length=0)
    ax.set_title("Input vs reconstruction (central z slice; pairs share contrast)", fontsize=8)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(png_path)
