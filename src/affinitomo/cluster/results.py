"""The results folder's plots: UMAP by class, cluster, tomogram and truth, the confusion matrix, the loss.

The folder's tables are written by :mod:`affinitomo.io.results`; class names and numbers follow
:mod:`affinitomo.labels`. ``afmClassName`` is the known class or ``unknown``; ``afmClusterId`` the
cluster (-1 noise).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affinitomo.labels import UNKNOWN, unknown_group_name

log = logging.getLogger(__name__)


def write_plots(out_dir: Path, results: pd.DataFrame, metrics: dict[str, Any] | None,
                training_log: Path | None, truth_names: np.ndarray | None = None) -> list[Path]:
    """umap.png (by class), umap_cluster.png, umap_tomogram.png, umap_truth.png, confusion.png, loss.png."""
    from affinitomo.plots.embedding import plot_embedding

    xy = results[["afmUMAP0", "afmUMAP1"]].to_numpy(float)
    by_group = np.where(results["rlnClassNumber"].to_numpy() > 0,
                        results["afmClassName"].astype(str).to_numpy(), UNKNOWN).astype(object)
    unk = results["afmClassName"].astype(str).to_numpy() == UNKNOWN
    by_group[unk & (results["afmClusterId"].to_numpy() >= 0)] = [
        unknown_group_name(c) for c in results["afmClusterId"].to_numpy()[unk & (results["afmClusterId"].to_numpy() >= 0)]]
    paths = [
        plot_embedding(out_dir / "umap.png", xy, by_group, "UMAP by assigned class"),
        plot_embedding(out_dir / "umap_cluster.png", xy, results["afmClusterId"].astype(str).to_numpy(),
                       "UMAP by cluster (-1: noise)"),
        plot_embedding(out_dir / "umap_tomogram.png", xy, results["rlnTomoName"].astype(str).to_numpy(),
                       "UMAP by tomogram"),
    ]
    if truth_names is not None:
        paths.append(plot_embedding(out_dir / "umap_truth.png", xy, truth_names, "UMAP by true class"))
    if metrics and "confusion" in metrics:
        from affinitomo.plots.confusion import plot_confusion

        conf = metrics["confusion"]
        paths.append(plot_confusion(out_dir / "confusion.png", np.array(conf["counts"]), conf["rows"],
                                    conf["columns"]))
    if training_log is not None:
        try:
            from affinitomo.plots.training import plot_training
        except ImportError:
            log.info("affinitomo.plots.training not available: loss.png not written")
        else:
            plot_training(training_log, out_dir / "loss.png")
            paths.append(out_dir / "loss.png")
    return paths
