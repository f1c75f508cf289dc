"""The average step's record for the report step: ``average/poses.npz`` and ``average/average.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affinitomo.errors import InputError
from affinitomo.io.results import step_files


FOLDER = "average"

ARRAYS = "poses.npz"

INFO = "average.json"


@dataclass
class AveragedRun:
    """What the average step decided per particle, and how (for the report step)."""

    assigned: np.ndarray  # (N,) str, after the competition
    numbers: np.ndarray  # (N,) rlnClassNumber
    clusters: np.ndarray  # (N,) afmClusterId
    rotation: np.ndarray | None  # (N, 3, 3), None without any pose source
    pose_source: np.ndarray  # (N,) str
    clustering: dict[str, Any]  # the classify step's, with "regroup" and "compete"
    alignment: dict[str, dict[str, Any]]  # per unknown group name: n, mean_score, moved_in
    options: dict[str, Any]  # AlignOptions in effect


def read_averaged(out_dir: str | Path, n_rows: int) -> AveragedRun:
    """The average step's ``average/poses.npz`` and ``average/average.json`` in ``out_dir``."""
    path, info_path = step_files(out_dir, FOLDER, (ARRAYS, INFO), "average")
    with np.load(path, allow_pickle=False) as npz:
        for key in ("assigned", "numbers", "clusters", "pose_source"):
            if key not in npz.files or len(npz[key]) != n_rows:
                raise InputError(path, key, f"{n_rows} values, one per particle (from 'affinitomo average')")
        rotation = npz["rotation"] if "rotation" in npz.files else None
        arrays = {k: npz[k] for k in ("assigned", "numbers", "clusters", "pose_source")}
    try:
        info = json.loads(info_path.read_text())
        return AveragedRun(arrays["assigned"].astype(object), arrays["numbers"].astype(np.int64),
                           arrays["clusters"].astype(np.int64), rotation, arrays["pose_source"].astype(object),
                           dict(info["clustering"]), dict(info["alignment"]), dict(info["options"]))
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(info_path, None, f"the JSON of 'affinitomo average' ({err})") from err


SOURCES = ("match", "model", "group", "input")  # group: aligned within its unknown group (averaging.align)
