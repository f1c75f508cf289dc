"""Scatter plots of the 2D embedding, coloured by a categorical label."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affinitomo.io.atomic import atomic_path

MAX_LEGEND = 30


def _colours(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_embedding(png_path: str | Path, xy: np.ndarray, labels: np.ndarray, title: str,
                   grey: tuple[str, ...] = ("unknown", "-1", "noise", "")) -> Path:
    """Write a scatter of ``xy`` (N, 2) coloured by ``labels``; labels in ``grey`` drawn grey, below.

    Categories are ordered by size; beyond ``MAX_LEGEND`` categories the legend is cut.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xy = np.asarray(xy, dtype=float)
    labels = np.asarray(labels).astype(str)
    names, counts = np.unique(labels, return_counts=True)
    order = [names[i] for i in np.argsort(-counts, kind="stable")]
    greys = [n for n in order if n in grey]
    coloured = [n for n in order if n not in grey]
    size = float(np.clip(2000.0 / max(len(xy), 1) ** 0.5, 0.5, 20))
    fig, ax = plt.subplots(figsize=(7, 6), dpi=120)
    for name in greys:
        sel = labels == name
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, c="0.6", marker="x" if name == "unknown" else ".",
                   linewidths=0.5, label=f"{name} ({sel.sum()})", rasterized=True)
    for name, colour in zip(coloured, _colours(len(coloured))):
        sel = labels == name
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, color=colour, label=f"{name} ({sel.sum()})",
                   edgecolors="none", rasterized=True)
    ax.set_xlabel("UMAP0")
    ax.set_ylabel("UMAP1")
    ax.set_title(title)
    handles, texts = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles[:MAX_LEGEND], texts[:MAX_LEGEND], loc="center left", bbox_to_anchor=(1.01, 0.5),
                  fontsize=7, markerscale=max(1.0, 6 / size), frameon=False)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return Path(png_path)
