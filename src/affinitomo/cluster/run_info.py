"""``RESULTS/run.json``: where a run's inputs are, for the napari viewer and later runs.

Keys (read by :func:`affinitomo.napari.results.read_run_info`): ``tomograms`` {name: absolute
path}, ``stack``, ``latents``, ``checkpoint`` (absolute paths or null), ``particle_diameter``
(Å or null); plus ``particles``, ``embedding``, ``classifier`` and ``version`` for the record.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from affinitomo import __version__
from affinitomo.errors import InputError

log = logging.getLogger(__name__)



def resolve_tomograms(paths: Iterable[str | Path]) -> dict[str, str]:
    """Tomogram name (file stem) -> absolute path, from files and folders of volume files."""
    from affinitomo.extract import find_tomograms

    return {name: str(path.expanduser().resolve()) for name, path in find_tomograms(list(paths)).items()}


def _absolute(path: str | Path | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def run_info(table: pd.DataFrame, *, tomograms: dict[str, str], particles: str | Path, latents: str | Path,
             embedding: str | Path, stack: str | Path | list[str | Path] | None, checkpoint: str | Path | None,
             classifier: str | Path | None, particle_diameter: float | None) -> dict[str, Any]:
    """The run.json dict; warns about tomograms of the table that no given file names."""
    if tomograms:
        missing = sorted(set(table["rlnTomoName"].astype(str)) - set(tomograms))
        if missing:
            log.warning("no tomogram file given for %d tomogram(s) of the table, e.g. %s", len(missing),
                        missing[:3])
    if particle_diameter is not None and not particle_diameter > 0:
        raise InputError("--particle-diameter", None, f"a positive number (Å), got {particle_diameter}")
    return {
        "tomograms": dict(sorted(tomograms.items())),
        "stack": [_absolute(s) for s in stack] if isinstance(stack, (list, tuple)) else _absolute(stack),
        "latents": _absolute(latents),
        "checkpoint": _absolute(checkpoint),
        "particle_diameter": None if particle_diameter is None else float(particle_diameter),
        "particles": _absolute(particles),
        "embedding": _absolute(embedding),
        "classifier": _absolute(classifier),
        "version": __version__,
    }
