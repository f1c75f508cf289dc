"""Checkpoints: plain dicts of tensors and built-in types, loadable with weights_only=True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from affinitomo import __version__
from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path
from affinitomo.versions import check_version

FORMAT = "affinitomo-checkpoint"
REQUIRED = ("format", "version", "config", "classes", "model", "box")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format and version) atomically to ``path``."""
    data = {"format": FORMAT, "version": __version__, **payload}
    with atomic_path(path) as tmp:
        torch.save(data, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint written by :func:`save_checkpoint`.

    Raises InputError when the file is missing, is not a safe torch file, or is not ours.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "checkpoint file not found")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input
        raise InputError(path, None, f"a torch checkpoint loadable with weights_only=True ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(path, "format", f"'{FORMAT}' (not an affinitomo checkpoint)")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise InputError(path, missing[0], "present in an affinitomo checkpoint")
    check_version(path, data["version"], "a checkpoint", "retrain, or use the affinitomo version that wrote it")
    return data
