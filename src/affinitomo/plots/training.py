"""Loss curves from training.csv: one panel per loss term, train and validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from affinitomo.io.atomic import atomic_path

TERMS = ("total", "recon", "kl", "affinity")


def plot_training(history: pd.DataFrame | str | Path, out: str | Path) -> Path:
    """Plot total, reconstruction, KL and affinity losses per epoch (plus beta, gamma) to PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(history, pd.DataFrame):
        from affinitomo.io.tables import read_csv_table

        history = read_csv_table(history, ["epoch"] + [f"train_{t}" for t in TERMS], "a training.csv")
    fig, axes = plt.subplots(1, len(TERMS) + 1, figsize=(4 * (len(TERMS) + 1), 3.2), constrained_layout=True)
    epoch = history["epoch"]
    for ax, term in zip(axes, TERMS):
        ax.plot(epoch, history[f"train_{term}"], "o-", ms=3, label="train")
        if f"val_{term}" in history and history[f"val_{term}"].notna().any():
            ax.plot(epoch, history[f"val_{term}"], "s--", ms=3, label="validation")
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    ax = axes[-1]
    for weight in ("beta", "gamma"):
        if weight in history:
            ax.plot(epoch, history[weight], label=weight)
    ax.set_title("loss weights")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out
