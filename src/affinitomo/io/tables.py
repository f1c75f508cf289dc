"""Reading the small CSV files of a run (embedding, scores, classes, training log) with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from affinitomo.errors import InputError


def read_csv_table(path: str | Path, columns: Sequence[str] = (), what: str = "a CSV file") -> pd.DataFrame:
    """``pd.read_csv(path)``; InputError naming the file for a missing or unreadable file, and naming
    the first absent column of ``columns``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, f"{what} (not found)")
    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # pandas raises several types for malformed CSV
        raise InputError(path, None, f"{what}, readable as CSV ({exc})") from exc
    for col in columns:
        if col not in frame.columns:
            raise InputError(path, col, f"columns {', '.join(columns)} ({what})")
    return frame


def rows_for_table(ids: Sequence[int] | np.ndarray, table: pd.DataFrame, where: Any, what: str,
                   table_path: Any = None) -> np.ndarray:
    """Position in ``ids`` of each ``table`` row's ``afmParticleId``; InputError naming ``where`` and
    the first missing ids when a row has none (``what``: e.g. "an embedding")."""
    wanted = table["afmParticleId"].to_numpy(np.int64)
    pos = pd.Index(np.asarray(ids, dtype=np.int64)).get_indexer(wanted)
    if (pos < 0).any():
        missing = wanted[pos < 0]
        raise InputError(where, "afmParticleId", f"{what} for every particle of {table_path}; {missing.size} "
                                                 f"missing (e.g. {missing[:5].tolist()})")
    return pos
