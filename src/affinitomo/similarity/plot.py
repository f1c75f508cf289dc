"""Heatmap of a similarity matrix, rows and columns ordered by hierarchical clustering."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affinitomo.io.atomic import atomic_path


def cluster_order(matrix: np.ndarray) -> np.ndarray:
    """Leaf order of average-linkage clustering on the distance ``(1 - s) / 2``."""
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    n = len(matrix)
    if n < 3:
        return np.arange(n)
    dist = np.clip((1.0 - (matrix + matrix.T) / 2) / 2, 0.0, 1.0)
    np.fill_diagonal(dist, 0.0)
    condensed = squareform(dist, checks=False)
    tree = optimal_leaf_ordering(linkage(condensed, method="average"), condensed)
    return leaves_list(tree)


def plot_similarity(path: str | Path, names: list[str], matrix: np.ndarray, title: str | None = None) -> Path:
    """Write a PNG heatmap of ``matrix`` (values in [-1, 1]) atomically; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    matrix = np.asarray(matrix, dtype=float)
    order = cluster_order(matrix)
    ordered = matrix[np.ix_(order, order)]
    labels = [names[i] for i in order]
    n = len(names)
    size = min(4 + 0.28 * n, 30)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(ordered, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks(range(n), labels, rotation=90, fontsize=max(4, 10 - n // 10))
    ax.set_yticks(range(n), labels, fontsize=max(4, 10 - n // 10))
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{ordered[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(ordered[i, j]) > 0.6 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="similarity")
    ax.set_title(title or "Protein similarity (ordered by average-linkage clustering)")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, format="png")
    finally:
        plt.close(fig)
    return path
