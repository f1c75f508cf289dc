"""The results folder's tables: particles.star columns, classes/<name>.star, classes.csv, JSON files.

Class names and numbers follow :mod:`affinitomo.labels`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path
from affinitomo.labels import safe_name


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


def step_files(out_dir: str | Path, folder: str, names: tuple[str, str], verb: str) -> tuple[Path, Path]:
    """The arrays and JSON file one cluster-stage step wrote under ``out_dir/folder``, checked to exist."""
    base = Path(out_dir) / folder
    paths = (base / names[0], base / names[1])
    for p in paths:
        if not p.is_file():
            raise InputError(p, None, f"the {verb} step's output ('affinitomo {verb} --out' this folder)")
    return paths
