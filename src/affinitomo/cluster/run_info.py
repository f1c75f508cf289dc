"""``RESULTS/run.json``: where a run's inputs are, for the napari viewer and later runs.

Keys (read by :func:`affinitomo.napari.results.read_run_info`): ``tomograms`` {name: absolute
path}, ``stack``, ``latents``, ``checkpoint`` (absolute paths or null), ``particle_diameter``
(Å or null); plus ``particles``, ``embedding``, ``classifier`` and ``version`` for the record.

``files`` {role: {"path", "sha256"}} fingerprints the files that classify new data with this run
(roles ``checkpoint``, ``classifier``, ``umap``, ``matrix``); the path is relative to the results
folder when the file lies inside it, so a moved or copied folder still checks.
:func:`check_against_run` compares a file given to a later command with that record: a model
retrained in place, or a classifier copied from another run, is then named instead of being
used with files it does not belong with.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from affinitomo import __version__
from affinitomo.errors import InputError

log = logging.getLogger(__name__)

RUN_INFO_NAME = "run.json"
#: The files of a run that classify new data, fingerprinted in run.json's ``files``.
FILE_ROLES = ("checkpoint", "classifier", "umap", "matrix")


def resolve_tomograms(paths: Iterable[str | Path]) -> dict[str, str]:
    """Tomogram name (file stem) -> absolute path, from files and folders of volume files."""
    from affinitomo.io.tomograms import find_tomograms

    return {name: str(path.expanduser().resolve()) for name, path in find_tomograms(list(paths)).items()}


def _absolute(path: str | Path | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def sha256(path: str | Path) -> str:
    """The SHA-256 of the file ``path``, as hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_records(out_dir: str | Path, files: dict[str, str | Path | None]) -> dict[str, dict[str, str]]:
    """run.json's ``files``: ``{role: {"path", "sha256"}}`` of the given files that exist."""
    base = Path(out_dir).expanduser().resolve()
    records = {}
    for role, given in files.items():
        if given is None or not Path(given).is_file():
            continue
        path = Path(given).expanduser().resolve()
        shown = path.relative_to(base) if path.is_relative_to(base) else path
        records[role] = {"path": str(shown), "sha256": sha256(path)}
    return records


def check_against_run(path: str | Path, role: str, out: str | Path | None = None) -> None:
    """Check ``path``, given as the run file ``role``, against the run.json of its run.

    The run.json looked at is the one in the file's folder or the folder above (the results
    folder of ``train/model.pt``, ``embed/umap.npz``, ``similarity/matrix.csv``, ``classifier.npz``).
    When it fingerprints this very file and the SHA-256 differs, the file was changed or replaced
    after that run wrote it: InputError naming both. Nothing is checked when run.json records
    no such file (an older run, or another file such as best.pt), or when ``out`` (what the
    command writes) lies inside that results folder: the command is then remaking that run, whose
    run.json is written again at its end.
    """
    path = Path(path).expanduser().resolve()
    for folder in (path.parent, path.parent.parent):
        record = folder / RUN_INFO_NAME
        if not record.is_file():
            continue
        if out is not None and Path(out).expanduser().resolve().is_relative_to(folder):
            return
        entry = _recorded(record).get(role)
        if entry is None or (folder / entry["path"]).resolve() != path:
            continue
        actual = sha256(path)
        if actual != entry["sha256"]:
            raise InputError(path, "sha256", f"the {role} file that {record} records (SHA-256 "
                                             f"{entry['sha256'][:16]}...); this one's is {actual[:16]}...: it was "
                                             f"changed or replaced after that run, so it does not belong with "
                                             f"the run's other files (give that run's file, or run it again)")
        return


def _recorded(record: Path) -> dict[str, dict[str, str]]:
    """``files`` of the run.json ``record``, checked (InputError naming it when malformed)."""
    try:
        info = json.loads(record.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(record, None, f"a readable run.json ({exc})") from None
    files = info.get("files", {}) if isinstance(info, dict) else None
    if not isinstance(files, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("path"), str) and isinstance(e.get("sha256"), str)
            for e in files.values()):
        raise InputError(record, "files", "an object of {role: {path, sha256}} records")
    return files


def run_info(table: pd.DataFrame, *, out_dir: str | Path, tomograms: dict[str, str], particles: str | Path,
             latents: str | Path, embedding: str | Path, stack: str | Path | list[str | Path] | None,
             checkpoint: str | Path | None, classifier: str | Path | None, umap: str | Path | None,
             matrix: str | Path | None, particle_diameter: float | None) -> dict[str, Any]:
    """The run.json dict of the results folder ``out_dir``; warns about tomograms of the table that
    no given file names."""
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
        "files": file_records(out_dir, {"checkpoint": checkpoint, "classifier": classifier, "umap": umap,
                                        "matrix": matrix}),
        "version": __version__,
    }
