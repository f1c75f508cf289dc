"""copick projects through the copick library: picks -> particle table, tomograms, results -> picks.

A project is its ``config.json`` (any overlay copick opens; local folders in the tests). Reading:

- picks of the chosen pickable objects (default: every particle object), users (default: all but
  ``affinitomo``, whose picks are exported results), sessions and runs (default: every run with
  picks) become the canonical particle table of
  :mod:`affinitomo.io.particles`: ``rlnTomoName`` = run name, pixel coordinates of the tomograms
  at the chosen voxel spacing (``x_px = x_Å / voxel_size``), RELION angles from the picks' 4x4
  transforms as :func:`affinitomo.io.copick.read_copick_picks` converts them, ``afmClassName`` =
  the object's name, ``afmPixelSize`` = the voxel spacing; ``afmCopickUser`` and
  ``afmCopickSession`` say where each row came from;
- tomograms are named by run. Each gets a *tomogram reference*, a small JSON file
  ``<run>.copick`` naming the project, run, voxel spacing and tomo type, which
  :func:`affinitomo.io.volumes.open_volume` opens as the OME-Zarr's level ``"0"``: a zarr array
  read chunk by chunk as it is sliced, never whole.

Writing (:func:`export_picks`): each known class of a results table, and each unknown group
(``unknown-c<cluster id>``, copick's spelling of :func:`affinitomo.labels.unknown_group_name`),
becomes a pickable object (added to ``config.json`` when missing) with one picks set per run, by
user ``affinitomo`` in the given session; locations in Å, orientations as 4x4 transforms
(:func:`affinitomo.io.copick.picks_transforms`). Unknown particles left as noise are not written.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path
from affinitomo.io.copick import picks_table, picks_transforms

log = logging.getLogger(__name__)

#: Suffix of a tomogram reference file.
REFERENCE_SUFFIX = ".copick"
#: Marks a tomogram reference file's JSON.
REFERENCE_FORMAT = "affinitomo-copick-tomogram"
#: User id of exported picks.
EXPORT_USER = "affinitomo"
#: Voxel spacings closer than this (Å) are the same (copick keeps three decimals).
_SPACING_TOLERANCE = 5e-4


@dataclass
class ImportPlan:
    """What an import reads: the project's root, the objects and the runs (those with picks)."""

    config: Path
    root: Any
    objects: list[str]
    runs: list[str]
    voxel_spacing: float
    user_id: list[str] | None
    session_id: list[str] | None


def _copick():
    try:
        import copick
    except ImportError as exc:
        raise InputError(None, "copick", f"the copick library (pip install 'affinitomo[copick]'): {exc}") from None
    return copick


def open_project(config: str | Path) -> Any:
    """The copick root of ``config`` (a project's config.json); InputError naming it when unreadable."""
    copick = _copick()
    config = Path(config)
    if not config.is_file():
        raise InputError(config, None, "a copick project config.json (file not found)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # config_type missing: copick assumes filesystem
            return copick.from_file(str(config))
    except Exception as exc:  # noqa: BLE001 - whatever copick raises for a bad config is bad input
        raise InputError(config, None, f"a valid copick config ({type(exc).__name__}: {exc})") from None


def _names(values: str | Iterable[str] | None) -> list[str] | None:
    if values is None:
        return None
    values = [values] if isinstance(values, str) else [str(v) for v in values]
    return values or None


def plan_import(config: str | Path, *, objects: Iterable[str] | None = None, user_id: str | Iterable[str] | None = None,
                session_id: str | Iterable[str] | None = None, runs: Iterable[str] | None = None,
                voxel_spacing: float | None = None, tomo_type: str | None = None) -> ImportPlan:
    """Check the choice of objects, runs and voxel spacing against the project.

    Default objects: every particle object. Default runs: those with picks of the objects (by the
    users and sessions, when given; by any user but ``affinitomo``, whose picks are exported
    results, otherwise); runs named in ``runs`` must have some. With ``tomo_type``,
    each run must hold that tomogram at ``voxel_spacing``. InputError naming the config and field.
    """
    config = Path(config)
    root = open_project(config)
    if voxel_spacing is None or not np.isfinite(voxel_spacing) or voxel_spacing <= 0:
        raise InputError(config, "voxel_spacing", f"a voxel spacing in Å (> 0), got {voxel_spacing!r}")
    known = [o.name for o in root.pickable_objects]
    wanted = _names(objects)
    if wanted is None:
        wanted = [o.name for o in root.pickable_objects if o.is_particle]
    unknown = [name for name in wanted if name not in known]
    if unknown or not wanted:
        raise InputError(config, "pickable_objects", f"pickable objects named {unknown or wanted}; the project has {known}")
    users, sessions = _names(user_id), _names(session_id)
    available = {run.name: run for run in root.runs}
    chosen = _names(runs)
    if chosen is not None:
        missing = [name for name in chosen if name not in available]
        if missing:
            raise InputError(config, "runs", f"runs of the project; no run {missing[:5]} among {sorted(available)[:20]}")
    with_picks = [name for name in (chosen or sorted(available))
                  if any(len(p.points) for p in _picks(available[name], wanted, users, sessions))]
    if chosen is not None and len(with_picks) < len(chosen):
        empty = [name for name in chosen if name not in with_picks]
        raise InputError(config, "runs", f"runs with picks of {wanted}{_by(users, sessions)}; {empty[:5]} have none")
    if not with_picks:
        raise InputError(config, "picks", f"picks of {wanted}{_by(users, sessions)} in some run; found none")
    if tomo_type is not None:
        for name in with_picks:
            _tomogram(root, config, name, float(voxel_spacing), tomo_type)
    return ImportPlan(config, root, wanted, with_picks, float(voxel_spacing), users, sessions)


def _by(users: list[str] | None, sessions: list[str] | None) -> str:
    return (f" by user {users}" if users else "") + (f" in session {sessions}" if sessions else "")


def _picks(run: Any, objects: list[str], users: list[str] | None, sessions: list[str] | None) -> list[Any]:
    """The run's picks sets of the objects, users and sessions, loaded (InputError naming a bad file).

    Without ``users``, every user's but affinitomo's own (its exported results are no input picks).
    """
    found = [p for p in run.get_picks(object_name=objects, user_id=users, session_id=sessions)
             if users is not None or p.user_id != EXPORT_USER]
    found.sort(key=lambda p: (objects.index(p.pickable_object_name), p.user_id, p.session_id))
    for picks in found:
        try:
            picks.load()
        except Exception as exc:  # noqa: BLE001 - a malformed picks file is bad input
            raise InputError(getattr(picks, "path", run.name), None,
                             f"a readable copick picks file ({type(exc).__name__}: {exc})") from None
    return found


def read_project_picks(plan: ImportPlan) -> pd.DataFrame:
    """The picks of the plan's objects and runs as one particle table (canonical columns, see the module)."""
    from affinitomo.io.particles import canonicalise

    tables = []
    for name in plan.runs:
        run = plan.root.get_run(name)
        sets = _picks(run, plan.objects, plan.user_id, plan.session_id)
        by_object: dict[str, int] = {}
        for picks in sets:
            doc = picks.meta.model_dump()
            doc["run_name"] = name  # the run the picks belong to names the tomogram
            path = getattr(picks, "path", f"{name}/{picks.pickable_object_name}")
            df = picks_table(doc, path, pixel_size=plan.voxel_spacing, default_tomo=name)
            df["afmCopickUser"] = picks.user_id
            df["afmCopickSession"] = picks.session_id
            tables.append(df)
            by_object[picks.pickable_object_name] = by_object.get(picks.pickable_object_name, 0) + 1
        for obj, n in by_object.items():
            if n > 1:
                log.warning("run %s: %d picks sets of %s (several users or sessions) are all read; choose with "
                            "--user / --session", name, n, obj)
    table = pd.concat(tables, ignore_index=True)
    return canonicalise(table, source=plan.config, pixel_size=plan.voxel_spacing)


def _tomogram(root: Any, config: Path, run_name: str, voxel_spacing: float, tomo_type: str) -> Any:
    """The run's tomogram of ``tomo_type`` at ``voxel_spacing``; InputError naming what the run has."""
    run = root.get_run(run_name)
    if run is None:
        raise InputError(config, "runs", f"a run named {run_name!r} in the project")
    spacings = [vs for vs in run.voxel_spacings if abs(vs.voxel_size - voxel_spacing) <= _SPACING_TOLERANCE]
    if not spacings:
        raise InputError(config, "voxel_spacing",
                         f"tomograms at voxel spacing {voxel_spacing:g} Å in run {run_name}; it has spacings "
                         f"{sorted(vs.voxel_size for vs in run.voxel_spacings)}")
    tomograms = spacings[0].get_tomograms(tomo_type)
    if not tomograms:
        raise InputError(config, "tomo_type",
                         f"a tomogram of type {tomo_type!r} at voxel spacing {voxel_spacing:g} Å in run "
                         f"{run_name}; it has {sorted(t.tomo_type for t in spacings[0].tomograms)}")
    return tomograms[0]


def write_tomogram_references(plan: ImportPlan, tomo_type: str, out_dir: str | Path) -> dict[str, Path]:
    """One tomogram reference ``out_dir/<run>.copick`` per run of the plan (atomically); name -> file."""
    out_dir = Path(out_dir)
    written = {}
    for name in plan.runs:
        _tomogram(plan.root, plan.config, name, plan.voxel_spacing, tomo_type)
        doc = {"format": REFERENCE_FORMAT, "config": str(plan.config.resolve()), "run": name,
               "voxel_spacing": plan.voxel_spacing, "tomo_type": tomo_type, "level": "0"}
        path = out_dir / f"{name}{REFERENCE_SUFFIX}"
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(doc, indent=2) + "\n")
        written[name] = path
    for old in out_dir.glob(f"*{REFERENCE_SUFFIX}"):
        if old not in written.values():
            old.unlink()
    return written


def open_tomogram_reference(path: str | Path) -> tuple[Any, float]:
    """The zarr array (``[z, y, x]``, read lazily) and voxel size (Å) of a tomogram reference file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, None, f"a readable copick tomogram reference (JSON): {exc}") from None
    fields = ("config", "run", "voxel_spacing", "tomo_type")
    if not isinstance(doc, dict) or doc.get("format") != REFERENCE_FORMAT or any(k not in doc for k in fields):
        raise InputError(path, "format", f"a copick tomogram reference ({REFERENCE_FORMAT}: {', '.join(fields)})")
    config = Path(doc["config"])
    if not config.is_absolute():
        config = path.parent / config
    try:
        spacing = float(doc["voxel_spacing"])
    except (TypeError, ValueError):
        raise InputError(path, "voxel_spacing", f"a number, got {doc['voxel_spacing']!r}") from None
    tomogram = _tomogram(open_project(config), config, str(doc["run"]), spacing, str(doc["tomo_type"]))
    level = str(doc.get("level", "0"))
    import zarr  # a dependency of copick

    try:
        group = zarr.open(tomogram.zarr(), mode="r")
        data = group[level] if isinstance(group, zarr.Group) else group
    except Exception as exc:  # noqa: BLE001 - a missing or corrupt store is bad input
        raise InputError(path, "level", f"an OME-Zarr tomogram with level {level!r} ({type(exc).__name__}: {exc})") from None
    return data, tomogram.voxel_spacing.voxel_size


def import_project(plan: ImportPlan, tomo_type: str, out_dir: str | Path) -> tuple[Path, dict[str, Path]]:
    """Write ``out_dir/particles.star`` and ``out_dir/tomograms/<run>.copick``; return their paths."""
    from affinitomo.io.particles import write_particles

    out_dir = Path(out_dir)
    table = read_project_picks(plan)
    references = write_tomogram_references(plan, tomo_type, out_dir / "tomograms")
    particles = write_particles(out_dir / "particles.star", table)
    log.info("read %d picks of %s in %d runs from %s", len(table), plan.objects, len(plan.runs), plan.config)
    return particles, references


# --------------------------------------------------------------------------- writing


def object_names(results: pd.DataFrame, source: str | Path) -> pd.Series:
    """Per-row copick object name: the known class, ``unknown-c<cluster>``, or ``""`` (noise, not written)."""
    from copick.util.escape import sanitize_name

    from affinitomo.labels import UNKNOWN, unknown_group_name

    if "afmClassName" not in results.columns:
        raise InputError(source, "afmClassName", "a results table with class names (the cluster stage's particles.star)")
    names = results["afmClassName"].astype(str).to_numpy().astype(object)
    clusters = (results["afmClusterId"].to_numpy(np.int64) if "afmClusterId" in results.columns
                else np.full(len(results), -1))
    unknown = names == UNKNOWN
    names[unknown] = [unknown_group_name(c) if c >= 0 else "" for c in clusters[unknown]]
    spelled = {}
    for name in pd.unique(names):
        if name:
            try:
                spelled[name] = sanitize_name(name, suppress_warnings=True)
            except ValueError:
                raise InputError(source, "afmClassName", f"class names usable as copick object names, not {name!r}") from None
    clash = pd.Series(spelled).duplicated(keep=False)
    if clash.any():
        raise InputError(source, "afmClassName", f"class names that stay distinct as copick names; "
                                                 f"{sorted(clash[clash].index)} all become {spelled[clash[clash].index[0]]!r}")
    return pd.Series([spelled.get(n, "") for n in names], index=results.index, dtype=object)


def export_picks(config: str | Path, results: pd.DataFrame, *, session_id: str, source: str | Path,
                 user_id: str = EXPORT_USER, pixel_size: float | None = None) -> dict[str, dict[str, int]]:
    """Write a results table back into the project as picks; return ``{run: {object: count}}``.

    Pixel coordinates become Å with the table's ``afmPixelSize`` (else ``pixel_size``). Objects
    missing from the project are added to its config.json (written atomically). Earlier picks of
    this user and session are replaced, and removed where this table has no such group.
    """
    from copick.util.escape import sanitize_name

    from affinitomo.io.particles import ANGLES, COORDS

    config = Path(config)
    root = open_project(config)
    for col in ("rlnTomoName", *COORDS):
        if col not in results.columns:
            raise InputError(source, col, "a particle table with tomogram names and coordinates")
    try:
        session, user = sanitize_name(str(session_id), True), sanitize_name(str(user_id), True)
    except ValueError:
        raise InputError(None, "session_id", f"a copick session and user id, got {session_id!r}, {user_id!r}") from None
    if session != str(session_id) or user != str(user_id):
        raise InputError(None, "session_id", f"ids without spaces, underscores or any of <>:\"/\\|?*, got "
                                             f"{session_id!r} and {user_id!r}")
    names = object_names(results, source)
    px = (results["afmPixelSize"].to_numpy(float) if "afmPixelSize" in results.columns
          else np.full(len(results), np.nan))
    if pixel_size is not None:
        px = np.where(np.isfinite(px), px, float(pixel_size))
    keep = (names != "").to_numpy()
    if not np.all(np.isfinite(px[keep]) & (px[keep] > 0)):
        raise InputError(source, "afmPixelSize", "a pixel size per particle (or --pixel-size) to convert pixels to Å")
    runs = {run.name: run for run in root.runs}
    tomos = results["rlnTomoName"].astype(str).to_numpy()
    missing = sorted(set(tomos[keep]) - set(runs))
    if missing:
        raise InputError(source, "rlnTomoName", f"names of runs of the project {config}; no run {missing[:5]}")
    _add_objects(root, config, sorted(set(names[keep])))
    xyz = results[COORDS].to_numpy(float) * px[:, None]
    angles = results[ANGLES].to_numpy(float) if all(c in results.columns for c in ANGLES) else np.zeros((len(results), 3))
    scores = (results["afmConfidence"].to_numpy(float) if "afmConfidence" in results.columns
              else np.ones(len(results)))
    scores = np.where(np.isfinite(scores), scores, 1.0)
    written: dict[str, dict[str, int]] = {}
    for tomo in sorted(set(tomos[keep])):
        run = runs[tomo]
        counts = written.setdefault(tomo, {})
        for name in sorted(set(names[keep & (tomos == tomo)])):
            rows = np.flatnonzero(keep & (tomos == tomo) & (names == name).to_numpy())
            picks = run.new_picks(object_name=name, session_id=session, user_id=user, exist_ok=True)
            picks.from_numpy(xyz[rows], picks_transforms(angles[rows]), scores=scores[rows])
            counts[name] = int(len(rows))
    for run in runs.values():  # an earlier export's groups that this one does not have
        for old in run.get_picks(user_id=user, session_id=session):
            if old.pickable_object_name not in written.get(run.name, {}):
                old.delete()
    skipped = int((~keep).sum())
    if skipped:
        log.info("%d particles without a class or group (unknown noise, unlabelled) are not written", skipped)
    return written


def _add_objects(root: Any, config: Path, names: list[str]) -> None:
    """Add the pickable objects missing from the project, and write its config.json atomically."""
    have = {o.name for o in root.pickable_objects}
    new = [name for name in names if name not in have]
    if not new:
        return
    for name in new:
        root.new_object(name=name, is_particle=True)
    with atomic_path(config) as tmp:
        tmp.write_text(json.dumps(root.config.model_dump(), indent=4) + "\n")
    log.info("added pickable objects %s to %s", new, config)
