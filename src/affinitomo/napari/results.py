"""Locating and loading the files of a results folder (no napari needed).

A results folder holds ``particles.star`` (the canonical particle table with the
cluster stage's columns), ``classes.csv``, optionally ``averages/<name>.mrc`` (one per class and
per unknown group ``unknown_c<cluster id>``) and
``run.json`` (``{"tomograms": {name: path}, "stack": path, "latents": path,
"checkpoint": path, "particle_diameter": Å}``; every key optional, relative paths are
resolved against the results folder first, then the working directory). Keys that
run.json does not give are looked up in the Snakemake workflow's layout, where the
results folder holds ``extract/subtomos.npy``, ``encode/latents.npz`` and
``train/model.pt`` (:data:`WORKFLOW_LAYOUT`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affinitomo.errors import InputError
from affinitomo.io.volumes import MRC_SUFFIXES, TIFF_SUFFIXES, open_volume

log = logging.getLogger(__name__)

PARTICLES_NAME = "particles.star"
RUN_INFO_NAME = "run.json"
VOLUME_SUFFIXES = tuple(sorted(MRC_SUFFIXES | TIFF_SUFFIXES))
WORKFLOW_LAYOUT = {"stack": "extract/subtomos.npy", "latents": "encode/latents.npz", "checkpoint": "train/model.pt"}


@dataclass
class RunInfo:
    """Paths recorded by the pipeline in ``RESULTS/run.json`` (all optional)."""

    tomograms: dict[str, Path] = field(default_factory=dict)
    stack: list[Path] | None = None  # one stack, or one per tomogram in table order
    latents: Path | None = None
    checkpoint: Path | None = None
    particle_diameter: float | None = None  # Å


def _resolve(value: object, base: Path, path: Path, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise InputError(path, key, "a path string")
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    beside = base / p
    return beside if beside.exists() or not p.exists() else p.resolve()


def read_run_info(results_dir: str | Path) -> RunInfo:
    """Read ``results_dir/run.json``, completed from :data:`WORKFLOW_LAYOUT` where files exist."""
    results_dir = Path(results_dir)
    info = _read_run_json(results_dir)
    for key, relative in WORKFLOW_LAYOUT.items():
        if getattr(info, key) is None and (results_dir / relative).is_file():
            setattr(info, key, [results_dir / relative] if key == "stack" else results_dir / relative)
    return info


def _read_run_json(results_dir: Path) -> RunInfo:
    path = results_dir / RUN_INFO_NAME
    if not path.is_file():
        return RunInfo()
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise InputError(path, None, "a JSON object")
    tomos = raw.get("tomograms") or {}
    if not isinstance(tomos, dict):
        raise InputError(path, "tomograms", "an object mapping tomogram names to paths")
    info = RunInfo(tomograms={str(k): _resolve(v, results_dir, path, f"tomograms.{k}") for k, v in tomos.items()})
    for key in ("latents", "checkpoint"):
        if raw.get(key) is not None:
            setattr(info, key, _resolve(raw[key], results_dir, path, key))
    stack = raw.get("stack")
    if stack is not None:
        stacks = stack if isinstance(stack, list) else [stack]
        info.stack = [_resolve(s, results_dir, path, "stack") for s in stacks] or None
    if raw.get("particle_diameter") is not None:
        try:
            info.particle_diameter = float(raw["particle_diameter"])
        except (TypeError, ValueError) as exc:
            raise InputError(path, "particle_diameter", "a number (Å)") from exc
        if not info.particle_diameter > 0:
            raise InputError(path, "particle_diameter", "a positive number (Å)")
    return info


def find_tomogram(
    name: str,
    *,
    run_info: RunInfo | None = None,
    tomograms_dir: str | Path | None = None,
    results_dir: str | Path | None = None,
) -> Path | None:
    """Where the tomogram called ``name`` is, or None.

    Order: ``--tomograms`` folder, ``run.json``, then ``RESULTS/tomograms`` and
    ``RESULTS/../tomograms`` (the layout ``affinitomo simulate`` writes).
    """
    if tomograms_dir is not None:
        folders = [Path(tomograms_dir)]
    else:
        recorded = None if run_info is None else run_info.tomograms.get(name)
        if recorded is not None:
            if recorded.is_file():
                return recorded
            log.warning("run.json names %s for tomogram %s, but it does not exist", recorded, name)
        folders = []
        if results_dir is not None:
            folders = [Path(results_dir) / "tomograms", Path(results_dir).parent / "tomograms"]
    for folder in folders:
        for suffix in VOLUME_SUFFIXES:
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def read_classes(path: str | Path) -> dict[str, int | None]:
    """Class and group names -> number (None where the file has no ``number`` column), in file order,
    from a ``classes.csv`` with a ``name`` column (absent file: {})."""
    path = Path(path)
    if not path.is_file():
        return {}
    from affinitomo.io.tables import read_csv_table

    table = read_csv_table(path, ("name",), "a classes.csv with a 'name' column of class names")
    if "number" not in table.columns:
        return {str(n): None for n in table["name"]}
    table = table.sort_values("number", kind="stable")
    return {str(n): None if k != k else int(k) for n, k in zip(table["name"], table["number"])}  # NaN: None


def open_tomogram(path: Path) -> tuple[np.ndarray, float | None]:
    """Memory-mapped tomogram ``[z, y, x]`` and its voxel size (Å) from the header."""
    return open_volume(path)


def particles_path(path: str | Path) -> tuple[Path, Path]:
    """(particles.star, results folder) for a results folder or a STAR file path."""
    path = Path(path)
    if path.is_dir():
        star = path / PARTICLES_NAME
        if not star.is_file():
            raise InputError(path, None, f"a results folder containing {PARTICLES_NAME}")
        return star, path
    if not path.is_file():
        raise InputError(path, None, "file not found")
    return path, path.parent
