"""The classify step's output, ``<results>/cluster/``: what the average and report steps start from.

- ``classified.npz`` (no pickle): per particle, in the order of the extracted table,
  ``afmParticleId``, the assigned class (``assigned``: a known class or 'unknown'), the cluster id
  (``clusters``, -1: noise), ``confidence``, ``distance``, the points that were clustered
  (``points``: the classifier's features or the UMAP) and the UMAP coordinates (``xy``);
- ``classified.json``: the known class order (``known``, numbers 1..K), the classes the classifier
  can assign (``trained``), the open set's calibration, the clustering's info, the options in
  effect (``cluster``, ``classify``) and whether ``classifier.npz`` was written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affinitomo.errors import InputError
from affinitomo.io.results import step_files

FOLDER = "cluster"
ARRAYS = "classified.npz"
INFO = "classified.json"
_KEYS = ("afmParticleId", "assigned", "clusters", "confidence", "distance", "points", "xy")


@dataclass
class ClassifiedRun:
    """Per-particle classification and grouping, and what produced them."""

    assigned: np.ndarray  # (N,) str
    clusters: np.ndarray  # (N,) int64
    confidence: np.ndarray
    distance: np.ndarray
    points: np.ndarray  # (N, D): what was clustered
    xy: np.ndarray  # (N, 2) UMAP
    known: list[str]
    trained: list[str]
    calibration: dict[str, Any]
    clustering: dict[str, Any]
    options: dict[str, dict[str, Any]]  # "cluster", "classify"
    classifier: bool  # classifier.npz written next to the results

    @property
    def n_unknown(self) -> int:
        from affinitomo.labels import UNKNOWN

        return int(np.sum(self.assigned == UNKNOWN))


def write_classified(out_dir: str | Path, ids: np.ndarray, run: ClassifiedRun) -> list[Path]:
    """Write ``out_dir/cluster/classified.npz`` and ``classified.json`` (atomically)."""
    from affinitomo.io.atomic import atomic_path
    from affinitomo.io.results import write_json

    folder = Path(out_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"afmParticleId": np.asarray(ids, dtype=np.int64), "assigned": np.asarray(run.assigned).astype(str),
              "clusters": np.asarray(run.clusters, dtype=np.int64), "confidence": np.asarray(run.confidence, float),
              "distance": np.asarray(run.distance, float), "points": np.asarray(run.points, float),
              "xy": np.asarray(run.xy, float)}
    path = folder / ARRAYS
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    info = {"known": run.known, "trained": run.trained, "calibration": run.calibration,
            "clustering": run.clustering, "options": run.options, "classifier": run.classifier}
    return [path, write_json(folder / INFO, info)]


def read_classified(out_dir: str | Path, table: pd.DataFrame, table_path: Any = None) -> ClassifiedRun:
    """The classify step's output in ``out_dir``, checked against ``table`` (same particles, same order)."""
    path, info_path = step_files(out_dir, FOLDER, (ARRAYS, INFO), "cluster")
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in _KEYS if k not in npz.files]
        if missing:
            raise InputError(path, missing[0], f"arrays {list(_KEYS)} of 'affinitomo cluster'")
        arrays = {k: npz[k] for k in _KEYS}
    ids = table["afmParticleId"].to_numpy(np.int64)
    if arrays["afmParticleId"].shape != ids.shape or not np.array_equal(arrays["afmParticleId"], ids):
        raise InputError(path, "afmParticleId", f"the particles of {table_path}, in its order (classified "
                                                f"from another table?)")
    try:
        info = json.loads(info_path.read_text())
        known, trained = list(info["known"]), list(info["trained"])
        options = {"cluster": dict(info["options"]["cluster"]), "classify": dict(info["options"]["classify"])}
        return ClassifiedRun(arrays["assigned"].astype(object), arrays["clusters"].astype(np.int64),
                             arrays["confidence"], arrays["distance"], arrays["points"], arrays["xy"], known, trained,
                             dict(info["calibration"]), dict(info["clustering"]), options, bool(info["classifier"]))
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(info_path, None, f"the JSON of 'affinitomo cluster' ({err})") from err
