"""Reading the pickles our stages write (UMAP model, classifier), with clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from affinitomo.errors import InputError


def read_pickle(path: str | Path, *, missing: str, expected: str) -> Any:
    """Unpickle ``path``; InputError ``missing`` when absent, ``expected (error)`` when unreadable.

    A pickle runs code when loaded: load only files your own runs wrote.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, missing)
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except Exception as exc:  # noqa: BLE001 - any unreadable pickle is bad input
        raise InputError(path, None, f"{expected} ({exc.__class__.__name__}: {exc})") from None
