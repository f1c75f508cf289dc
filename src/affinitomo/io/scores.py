"""``scores.csv``: each particle's best template-matching score per template.

Columns: ``afmParticleId``, then one column per template (its class name, sorted template
order). Written by the ``match`` stage (one file per tomogram in the workflow) and read by the
``cluster`` stage, which uses the scores as features next to the latents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path
from affinitomo.io.tables import read_csv_table, rows_for_table

ID = "afmParticleId"


def write_scores(path: str | Path, particle_id: np.ndarray, classes: Sequence[str], scores: np.ndarray) -> Path:
    """Write ``afmParticleId,<class>,...`` atomically."""
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (len(particle_id), len(classes)):
        raise ValueError(f"scores {scores.shape} do not match {len(particle_id)} particles x {len(classes)} classes")
    frame = pd.DataFrame(scores, columns=list(classes))
    frame.insert(0, ID, np.asarray(particle_id, dtype=np.int64))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    return Path(path)


def _read_one(path: Path) -> pd.DataFrame:
    frame = read_csv_table(path, (ID,), "a scores.csv of 'affinitomo match'")
    if frame.shape[1] < 2:
        raise InputError(path, ID, "columns afmParticleId and one score column per template")
    for col in frame.columns[1:]:
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.isna().any() or not np.isfinite(values.to_numpy(float)).all():
            bad = int(values.isna().sum() + (~np.isfinite(values.fillna(0).to_numpy(float))).sum())
            raise InputError(path, col, f"a finite number for every particle ({bad} rows are not)")
        frame[col] = values.astype(float)
    return frame


def read_scores(paths: str | Path | Sequence[str | Path], table: pd.DataFrame,
                table_path: Any = None) -> tuple[list[str], np.ndarray]:
    """(template names, (N, K) scores in ``table`` row order) from one or more ``scores.csv``.

    Files are concatenated (e.g. one per tomogram); they must share the template columns, and
    every particle of the table needs exactly one row.
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not paths:
        raise InputError(None, "scores", "at least one scores.csv")
    frames = [_read_one(p) for p in paths]
    names = list(frames[0].columns[1:])
    for path, frame in zip(paths[1:], frames[1:]):
        if list(frame.columns[1:]) != names:
            raise InputError(path, "columns", f"the templates of {paths[0]}: {names}; got {list(frame.columns[1:])}")
    scores = pd.concat(frames, ignore_index=True)
    where = ", ".join(str(p) for p in paths)
    if not scores[ID].is_unique:
        dup = scores.loc[scores[ID].duplicated(), ID].to_numpy()[:5].tolist()
        raise InputError(where, ID,
                         f"one row per particle; repeated ids, e.g. {dup}")
    pos = rows_for_table(scores[ID], table, where, "scores", table_path)
    return names, scores[names].to_numpy(float)[pos]
