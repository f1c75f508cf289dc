"""The similarity matrix next to the cosine similarity of the class-mean latents."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affinitomo.io.atomic import atomic_path


def plot_latent_similarity(png_path: str | Path, names: list[str], matrix: np.ndarray, cosine: np.ndarray,
                           rho: float | None, basis: str) -> Path:
    """Two heatmaps on the same [-1, 1] scale, classes in matrix order; Spearman rho in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names)
    size = max(3.0, 0.35 * n + 2.0)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1.2, size + 0.6), dpi=110, constrained_layout=True)
    im = None
    for ax, data, sub in ((axes[0], matrix, "similarity matrix (prior)"),
                          (axes[1], cosine, f"latent cosine similarity of class means\n({basis})")):
        im = ax.imshow(np.asarray(data, float), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(n), names, rotation=90, fontsize=7)
        ax.set_yticks(range(n), names, fontsize=7)
        ax.set_title(sub, fontsize=8)
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    rho_text = "n/a (fewer than 3 class pairs)" if rho is None or not np.isfinite(rho) else f"{rho:.3f}"
    fig.suptitle(f"Prior vs latent space: Spearman rho = {rho_text} over class pairs", fontsize=9)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(png_path)
