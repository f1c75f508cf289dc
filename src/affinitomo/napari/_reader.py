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
    return read_results if p.suffix.lower() == ".star" and is_particle_star(p) else None


#: columns of which a particle table has at least one (pixel or centred Å coordinates)
COORDINATE_COLUMNS = ("_rlnCoordinateX", "_rlnCenteredCoordinateXAngst")


def is_particle_star(path: Path, head: int = 1 << 20) -> bool:
    """True when the STAR file's first ``head`` bytes name a particle coordinate column (so napari
    offers the file to other readers, e.g. for a tilt-series or optics table, instead of failing)."""
    try:
        with open(path, "rb") as f:
            text = f.read(head).decode("utf-8", errors="replace")
    except OSError:
        return False
    names = {line.split()[0] for line in text.splitlines() if line.lstrip().startswith("_rln")}
    return any(column in names for column in COORDINATE_COLUMNS)


def read_results(path: str | list[str]) -> list[LayerData]:
    """Layers for a results folder or particle table (tomograms found via run.json or beside it)."""
    if isinstance(path, list):
        path = path[0]
    return session_layers(load_session(path))
