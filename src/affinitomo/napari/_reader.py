"""npe2 reader: a results folder or a particles ``.star`` file -> image + points layers."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from affinitomo.napari.layers import LayerData, session_layers
from affinitomo.napari.results import PARTICLES_NAME
from affinitomo.napari.session import load_session


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """Return :func:`read_results` for a results folder or a ``.star`` file, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.is_dir():
        return read_results if (p / PARTICLES_NAME).is_file() else None
    return read_results if p.suffix.lower() == ".star" else None


def read_results(path: str | list[str]) -> list[LayerData]:
    """Layers for a results folder or particle table (tomograms found via run.json or beside it)."""
    if isinstance(path, list):
        path = path[0]
    return session_layers(load_session(path))
