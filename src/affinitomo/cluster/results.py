"""The results folder: particles.star, classes/<name>.star, classes.csv, metrics.json, plots.

Class numbers (``rlnClassNumber``, 1-based, RELION style):

- known classes are numbered 1..K in the similarity matrix's order (or sorted names
  when no matrix is given), whether or not any particle was assigned to them;
- particles called ``unknown`` get a number per cluster, K+1, K+2, ... in decreasing
  order of how many unknown particles the cluster holds (name ``unknown_c<cluster id>``
  in classes.csv and classes/), so a new molecule appears as its own group;
- unknown particles that HDBSCAN left as noise (cluster -1) get 0 (= unassigned) and no
  per-class STAR file.

``afmClassName`` is the known class or ``unknown``; ``afmClusterId`` the cluster (-1 noise).
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affinitomo.io.atomic import atomic_path

log = logging.getLogger(__name__)

UNKNOWN = "unknown"


def unknown_group_name(cluster_id: int) -> str:
    """``unknown_c<id>`` for unknown particles of cluster ``id``."""
    return f"{UNKNOWN}_c{int(cluster_id)}"


def class_numbers(known: list[str], assigned: np.ndarray, clusters: np.ndarray,
                  trained: list[str] | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Per-particle class number, and the name/number table (``name,number,known,count``).

    ``known`` gives the numbering (matrix order); the ``known`` column is 1 for classes in
    ``trained`` (those with labelled particles, which the classifier can assign; default all).
    """
    trained_set = set(known if trained is None else trained)
    assigned = np.asarray(assigned).astype(str)
    clusters = np.asarray(clusters, dtype=np.int64)
    numbers = np.zeros(len(assigned), dtype=np.int64)
    rows = []
    for i, name in enumerate(known):
        sel = assigned == name
        numbers[sel] = i + 1
        rows.append({"name": name, "number": i + 1, "known": int(name in trained_set), "count": int(sel.sum())})
    unk = assigned == UNKNOWN
    cids, counts = np.unique(clusters[unk & (clusters >= 0)], return_counts=True)
    order = np.lexsort((cids, -counts))
    for j, k in enumerate(order):
        number = len(known) + 1 + j
        sel = unk & (clusters == cids[k])
        numbers[sel] = number
        rows.append({"name": unknown_group_name(cids[k]), "number": number, "known": 0, "count": int(sel.sum())})
    noise = unk & (clusters < 0)
    if noise.any():
        rows.append({"name": UNKNOWN, "number": 0, "known": 0, "count": int(noise.sum())})
    return numbers, pd.DataFrame(rows, columns=["name", "number", "known", "count"])


def group_names(numbers: np.ndarray, classes: pd.DataFrame) -> np.ndarray:
    """Per-particle group name (known class, ``unknown_c<id>``, or ``unknown``) from class numbers."""
    lookup = dict(zip(classes["number"], classes["name"]))
    return np.array([lookup.get(int(n), UNKNOWN) for n in numbers], dtype=object)


def build_table(table: pd.DataFrame, *, assigned: np.ndarray, numbers: np.ndarray, clusters: np.ndarray,
                confidence: np.ndarray, distance: np.ndarray, umap_xy: np.ndarray, labelled: np.ndarray,
                angles: np.ndarray | None) -> pd.DataFrame:
    """The canonical table plus the results columns (rows in the input order)."""
    out = table.copy()
    out["afmClassName"] = np.asarray(assigned).astype(str)
    out["rlnClassNumber"] = np.asarray(numbers, dtype=np.int64)
    out["afmClusterId"] = np.asarray(clusters, dtype=np.int64)
    out["afmConfidence"] = np.round(np.asarray(confidence, dtype=float), 6)
    out["afmDistance"] = np.round(np.where(np.isfinite(distance), distance, np.nan), 6)
    out["afmUMAP0"] = np.asarray(umap_xy[:, 0], dtype=float)
    out["afmUMAP1"] = np.asarray(umap_xy[:, 1], dtype=float)
    out["afmLabelled"] = np.asarray(labelled, dtype=np.int64)
    if angles is not None:
        out["rlnAngleRot"], out["rlnAngleTilt"], out["rlnAnglePsi"] = (np.asarray(angles[:, i], dtype=float)
                                                                       for i in range(3))
    return out


def safe_name(name: str) -> str:
    """A class name usable as a file stem."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name) or "_"


def write_class_stars(out_dir: Path, results: pd.DataFrame, classes: pd.DataFrame) -> list[Path]:
    """One STAR per group with a number > 0 and at least one particle; stale ones removed."""
    from affinitomo.io.particles import write_particles

    folder = out_dir / "classes"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for row in classes.itertuples():
        if row.number <= 0 or row.count == 0:
            continue
        sub = results[results["rlnClassNumber"] == row.number]
        sub.attrs = dict(results.attrs)
        written.append(write_particles(folder / f"{safe_name(row.name)}.star", sub))
    for old in folder.glob("*.star"):
        if old not in written:
            old.unlink()
    return written


def write_classes_csv(path: Path, classes: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        classes.to_csv(tmp, index=False)
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(payload), indent=2) + "\n")
    return path


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
