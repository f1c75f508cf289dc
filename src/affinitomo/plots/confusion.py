"""Confusion matrix heatmap (rows: true class, columns: assigned label)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affinitomo.io.atomic import atomic_path


def plot_confusion(png_path: str | Path, counts: np.ndarray, rows: list[str], columns: list[str],
                   title: str = "Assigned vs true class (particles not labelled for training)") -> Path:
    """Heatmap of row-normalised fractions, annotated with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(counts, dtype=float)
    frac = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    w = max(5.0, 0.55 * len(columns) + 2.5)
    h = max(4.0, 0.45 * len(rows) + 2.0)
    fig, ax = plt.subplots(figsize=(w, h), dpi=120)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("assigned")
    ax.set_ylabel("true")
    if len(rows) * len(columns) <= 400:
        for i in range(len(rows)):
            for j in range(len(columns)):
                if counts[i, j]:
                    ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, label="fraction of true class")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(png_path)
