"""Particle tables: read RELION 4/5 STAR, CSV and copick picks; write two-block STAR.

Every reader returns the *canonical table* of ``docs/architecture.md``:

============================  ==================================================
``rlnTomoName``               tomogram name (str), matched to a tomogram file stem
``rlnCoordinateX/Y/Z``        particle centre in pixels of the tomogram (float)
``rlnAngleRot/Tilt/Psi``      RELION ZYZ pose in degrees (0 when absent)
``rlnClassNumber``            1-based class number, 0 = unassigned (int)
``afmClassName``              class name, ``""`` = unlabelled (str)
``afmPixelSize``              Å per tomogram pixel (float, NaN when unknown)
``afmParticleId``             unique integer id (kept from input, else 0..N-1)
``rlnOpticsGroup``            optics group (int), kept or assigned per pixel size
============================  ==================================================

Any other input column is kept unchanged, so results can be written back in the
terms of the source (e.g. RELION 5 ``rlnCenteredCoordinate*Angst`` columns stay).
``df.attrs["source"]`` records the input format and path, and ``df.attrs["optics"]``
the input optics block (written back by :func:`write_particles` when consistent).

Class labels: a STAR file's ``afmClassName`` is the label. Without it, the class
name stays ``""`` and ``rlnClassNumber`` is kept as is: a RELION class number
(e.g. from 3D classification) is not a protein identity, so it is never turned
into a label. In CSV files the ``class`` column may hold names (-> ``afmClassName``,
numbered 1..K in sorted order) or integers (-> ``rlnClassNumber`` only, as in STAR).

Malformed tables are an InputError naming the file and the column: a column given twice
(also through CSV aliases such as ``x`` and ``rlnCoordinateX``), a row without a tomogram
name, numbers that are not numbers, integers beyond 2^53. CSV names are kept as written
(a tomogram called ``NA`` stays ``NA``); in numeric columns ``nan``, ``NA`` and the like
mean missing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import starfile

from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path

log = logging.getLogger(__name__)

COORDS = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
CENTRED = ["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"]
ANGLES = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
CANONICAL = [
    "rlnTomoName", *COORDS, *ANGLES, "rlnClassNumber", "afmClassName", "afmPixelSize", "afmParticleId", "rlnOpticsGroup"
]
STRING_COLUMNS = ["rlnTomoName", "afmClassName", "rlnMicrographName", "rlnOpticsGroupName", "rlnImageName"]
#: Texts that STAR readers (starfile, RELION) take for a missing value, so a name cannot be one.
STAR_MISSING = {"nan", "NaN", "<NA>"}
#: Texts that stand for a missing number in a CSV file (pandas' defaults); names keep them as text.
CSV_MISSING = {"nan", "NaN", "NA", "N/A", "n/a", "null", "NULL", "None", "<NA>", "-nan", "-NaN", "#N/A"}
# Suffixes stripped from rlnMicrographName when it stands in for rlnTomoName (Warp, RELION 3).
_NAME_SUFFIXES = (".tomostar", ".mrc", ".rec", ".st", ".mrcs", ".map", ".tif", ".tiff")
_PIXEL_TOLERANCE = 0.01


def read_particles(
    path: str | Path,
    *,
    pixel_size: float | None = None,
    tomogram_shapes: Mapping[str, tuple[int, int, int]] | None = None,
    default_tomo: str | None = None,
    only_tomo: str | None = None,
) -> pd.DataFrame:
    """Read a particle table (STAR, CSV or copick JSON) into the canonical table.

    Formats, chosen by suffix (``.star``, ``.csv``/``.tsv``/``.txt``, ``.json``):

    - RELION 4 STAR: ``rlnCoordinateX/Y/Z`` in pixels, ``rlnTomoName`` (or
      ``rlnMicrographName``); one block, or ``data_optics`` + ``data_particles``.
    - RELION 5 STAR: ``rlnCenteredCoordinateX/Y/ZAngst`` (Å from the tomogram
      centre). Converted with RELION's C++ convention
      ``x_px = x_Å / pixel_size + size_x / 2`` (integer division not applied: for
      odd sizes the centre is at ``size/2``, e.g. 50.5). Needs ``tomogram_shapes``
      (array shapes ``(nz, ny, nx)`` per tomogram name) and a pixel size.
    - CSV with a header row: ``x, y, z`` (pixels, case-insensitive; ``rlnCoordinateX``..
      also accepted), optional ``class`` (name or integer), ``tomo``, angles.
    - copick picks JSON (see :mod:`affinitomo.io.copick`): locations in Å.

    ``pixel_size`` (Å per pixel of the tomograms the coordinates refer to) fills
    ``afmPixelSize`` where the file gives none. Where the file gives one for pixel
    coordinates, it must agree within 1% (pixel coordinates are in the file's units).
    For Å coordinates (RELION 5, copick) it takes precedence over the file's, since
    those can be expressed in any pixel size. The pixel size comes from, in order:
    a per-particle ``afmPixelSize`` column, the optics block
    (``rlnTomoTiltSeriesPixelSize``, then ``rlnImagePixelSize``), a per-particle
    ``rlnImagePixelSize`` / ``rlnTomoTiltSeriesPixelSize`` column, the argument.

    ``default_tomo`` names the tomogram for tables without a tomogram column. ``only_tomo``
    keeps the rows of that tomogram alone (ids are numbered over the whole table first, so
    per-tomogram tables gather without clashes); only its shape is then needed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "file not found" if not path.exists() else "a particle table file, got a folder")
    suffix = path.suffix.lower()
    if suffix == ".json":
        from affinitomo.io.copick import read_copick_picks

        df = read_copick_picks(path, pixel_size=pixel_size, default_tomo=default_tomo)
        fmt = "copick"
    elif suffix in (".csv", ".tsv", ".txt"):
        df, fmt = _read_csv(path), "csv"
    else:
        df, fmt = _read_star(path, pixel_size)
    if len(df) == 0:
        raise InputError(path, "particles", "at least one particle, got an empty table")
    optics = df.attrs.get("optics")
    df = df.reset_index(drop=True)
    if only_tomo is not None:
        df = _only_tomogram(path, df, only_tomo, default_tomo)
    if fmt == "star" and all(c in df.columns for c in CENTRED) and not all(c in df.columns for c in COORDS):
        fmt = "relion5"
        df = _centred_to_pixels(path, df, pixel_size, tomogram_shapes)
    df = _canonicalise(path, df, pixel_size, default_tomo)
    df.attrs = {"optics": optics} if optics is not None else {}
    df.attrs["source"] = {"format": "relion4" if fmt == "star" else fmt, "path": str(path)}
    return df


def write_particles(path: str | Path, df: pd.DataFrame) -> Path:
    """Write ``df`` as a two-block STAR file (``data_optics`` + ``data_particles``), atomically.

    Optics groups: the table's ``rlnOpticsGroup`` when each group has one pixel
    size, else one group per distinct ``afmPixelSize``. Floats are written with 6
    decimals; ``read_particles(write_particles(p, df))`` equals ``df`` to that
    precision (plus ``rlnOpticsGroup`` when ``df`` lacked it). Names a STAR file cannot
    keep (``nan``/``NaN``/``<NA>``, which readers take for missing, an empty tomogram name,
    quotes, ``#``, tabs, line breaks, a leading ``_``) are an InputError, not a changed table.
    """
    path = Path(path)
    missing = [c for c in ("rlnTomoName", *COORDS) if c not in df.columns]
    if missing:
        raise InputError(path, missing[0], f"a particle table with columns {missing} to write")
    for col in [c for c in STRING_COLUMNS if c in df.columns]:
        text = df[col].astype(object).where(df[col].notna(), None)
        lost = text.map(lambda t: t is not None and not _star_keeps(str(t)))
        if col == "rlnTomoName":
            lost |= text.isin([None, ""])
        if lost.any():
            raise InputError(path, col, f"names that a STAR file keeps, not {text[lost].iloc[0]!r}: a STAR file "
                                        f"reads {sorted(STAR_MISSING)} (and empty names) as missing, and quotes, "
                                        f"'#', tabs, line breaks or a leading '_' as syntax")
    particles = df.copy()
    particles.attrs = {}
    pixel = particles["afmPixelSize"].astype(float) if "afmPixelSize" in particles else pd.Series(np.nan, index=df.index)
    groups = particles.get("rlnOpticsGroup")
    consistent = groups is not None and pixel.groupby(groups.to_numpy(), dropna=False).nunique(dropna=False).max() <= 1
    if not consistent:
        codes, uniques = pd.factorize(pixel, use_na_sentinel=False)
        particles["rlnOpticsGroup"] = codes.astype(np.int64) + 1
    group_ids = sorted(pd.unique(particles["rlnOpticsGroup"]))
    pixel_of = pixel.groupby(particles["rlnOpticsGroup"].to_numpy(), dropna=False).first()
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": group_ids,
            "rlnOpticsGroupName": [f"opticsGroup{g}" for g in group_ids],
            "rlnTomoTiltSeriesPixelSize": [pixel_of.get(g, np.nan) for g in group_ids],
            "rlnImagePixelSize": [pixel_of.get(g, np.nan) for g in group_ids],
        }
    )
    source_optics = df.attrs.get("optics")
    if isinstance(source_optics, pd.DataFrame) and "rlnOpticsGroup" in source_optics:
        extra = source_optics.drop(columns=[c for c in optics.columns if c != "rlnOpticsGroup"], errors="ignore")
        if set(group_ids) <= set(extra["rlnOpticsGroup"]) and extra["rlnOpticsGroup"].is_unique:
            optics = optics.merge(extra, on="rlnOpticsGroup", how="left")
    for col in particles.columns:  # booleans as 0/1 so that every STAR reader understands them
        if particles[col].dtype == bool:
            particles[col] = particles[col].astype(np.int64)
    with atomic_path(path) as tmp:
        starfile.write({"optics": optics, "particles": particles}, tmp, na_rep="nan")
    return path


def canonicalise(
    df: pd.DataFrame, *, source: str | Path | None = None, pixel_size: float | None = None, default_tomo: str | None = None
) -> pd.DataFrame:
    """A table with pixel coordinates -> the canonical table (checks as :func:`read_particles`).

    For tables built in code (simulation, tests): adds the missing canonical
    columns with their defaults and checks coordinates, angles and ids.
    """
    attrs = dict(df.attrs)
    out = _canonicalise(Path(source) if source is not None else None, df.reset_index(drop=True).copy(), pixel_size, default_tomo)
    out.attrs = attrs
    return out


def pixel_to_centred(df: pd.DataFrame, tomogram_shapes: Mapping[str, tuple[int, int, int]]) -> pd.DataFrame:
    """RELION 5 centred Å coordinates of a canonical table (inverse of the reader's conversion).

    ``x_Å = (x_px - size_x / 2) * pixel_size``; shapes are ``(nz, ny, nx)``.
    """
    out = pd.DataFrame(index=df.index)
    sizes = np.array([tomogram_shapes[name][::-1] for name in df["rlnTomoName"]], dtype=float)
    px = df["afmPixelSize"].to_numpy(float)
    for i, (src, dst) in enumerate(zip(COORDS, CENTRED)):
        out[dst] = (df[src].to_numpy(float) - sizes[:, i] / 2) * px
    return out


# --------------------------------------------------------------------------- readers


def _read_star(path: Path, pixel_size: float | None) -> tuple[pd.DataFrame, str]:
    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=STRING_COLUMNS)
    except Exception as exc:
        raise InputError(path, None, f"a readable STAR file ({type(exc).__name__}: {exc})") from exc
    tables = {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame)}
    for name, block in tables.items():
        _unique_columns(path, block, f"data_{name}")
    if not tables:
        raise InputError(path, "data_particles", "a STAR file with a loop_ block of particles")
    particles = next((tables[k] for k in ("particles", "") if k in tables), None)
    if particles is None:
        with_coords = [v for v in tables.values() if set(COORDS) <= set(v.columns) or set(CENTRED) <= set(v.columns)]
        others = [v for k, v in tables.items() if k != "optics"]
        if not with_coords and not others:
            raise InputError(path, "data_particles", "a STAR file with a loop_ block of particles (found data_optics alone)")
        particles = with_coords[0] if with_coords else others[0]
    particles = particles.copy()
    optics = tables.get("optics")
    if "afmPixelSize" not in particles.columns:
        particles["afmPixelSize"] = _star_pixel_size(path, particles, optics)
    if optics is not None:
        particles.attrs["optics"] = optics.copy()
    return particles, "star"


def _star_pixel_size(path: Path, particles: pd.DataFrame, optics: pd.DataFrame | None) -> np.ndarray:
    n = len(particles)
    if optics is not None and "rlnOpticsGroup" in optics.columns:
        for col in ("rlnTomoTiltSeriesPixelSize", "rlnImagePixelSize"):
            if col in optics.columns:
                sizes = _numeric(path, optics, col)
                if "rlnOpticsGroup" not in particles.columns:
                    if len(optics) == 1:
                        return np.full(n, sizes[0])
                    raise InputError(path, "rlnOpticsGroup", "an optics group per particle (the optics block has several)")
                lookup = dict(zip(_integers(path, optics, "rlnOpticsGroup").tolist(), sizes))
                groups = _integers(path, particles, "rlnOpticsGroup")
                unknown = sorted(set(groups.tolist()) - set(lookup))
                if unknown:
                    raise InputError(path, "rlnOpticsGroup", f"groups listed in data_optics, got unknown {unknown[:5]}")
                return np.array([lookup[g] for g in groups.tolist()], dtype=float)
    for col in ("rlnImagePixelSize", "rlnTomoTiltSeriesPixelSize"):
        if col in particles.columns:
            return pd.to_numeric(particles[col], errors="coerce").to_numpy(float)
    return np.full(n, np.nan)


def _unique_columns(path: Path, df: pd.DataFrame, where: str) -> None:
    """InputError naming the first column that ``df`` has twice (which value would be meant?)."""
    twice = df.columns[df.columns.duplicated()]
    if len(twice):
        raise InputError(path, str(twice[0]), f"one column of each name in {where}; it is there twice "
                                              f"(CSV aliases such as 'x' and 'rlnCoordinateX' name one column)")


def _read_csv(path: Path) -> pd.DataFrame:
    sep = "\t" if path.suffix.lower() == ".tsv" else None
    try:
        raw = pd.read_csv(path, sep=sep, engine="python", dtype=str, skipinitialspace=True,
                          keep_default_na=False, na_values=[""])  # a tomogram named "NA" stays "NA"
    except pd.errors.EmptyDataError as exc:
        raise InputError(path, "particles", "at least one particle, got an empty file") from exc
    except Exception as exc:
        raise InputError(path, None, f"a readable CSV file with a header row ({type(exc).__name__}: {exc})") from exc
    aliases = {
        "x": "rlnCoordinateX", "y": "rlnCoordinateY", "z": "rlnCoordinateZ",
        "tomo": "rlnTomoName", "tomogram": "rlnTomoName", "tomo_name": "rlnTomoName",
        "rot": "rlnAngleRot", "tilt": "rlnAngleTilt", "psi": "rlnAnglePsi",
        "id": "afmParticleId", "particle_id": "afmParticleId", "pixel_size": "afmPixelSize",
    }
    df = raw.set_axis([aliases.get(str(c).strip().lower(), str(c).strip()) for c in raw.columns], axis=1)
    _unique_columns(path, df, "the header")
    class_cols = [c for c in df.columns if c.lower() == "class"]
    if len(class_cols) > 1:
        raise InputError(path, class_cols[1], f"one class column, got {class_cols}")
    for col in df.columns:
        if col in STRING_COLUMNS:
            df[col] = df[col].fillna("").astype(str)
        elif col.lower() != "class":
            df[col] = df[col].where(~df[col].isin(CSV_MISSING))  # names stay as written, numbers may be missing
            converted = pd.to_numeric(df[col], errors="coerce")
            if converted.notna().sum() == df[col].notna().sum():  # numeric column
                df[col] = converted
    class_col = next((c for c in df.columns if c.lower() == "class"), None)
    if class_col is not None:
        labels = df.pop(class_col).fillna("").astype(str).str.strip()
        numbers = pd.to_numeric(labels.replace("", "0"), errors="coerce")
        if numbers.notna().all() and (numbers == numbers.round()).all() and (numbers.abs() <= 2.0**53).all():
            df["rlnClassNumber"] = numbers.astype(np.int64)
        else:
            df["afmClassName"] = labels
    return df


# --------------------------------------------------------------------------- conversions


def _only_tomogram(path: Path, df: pd.DataFrame, name: str, default_tomo: str | None) -> pd.DataFrame:
    """Rows of tomogram ``name``, with ids numbered over the whole table when it has none."""
    if "afmParticleId" not in df.columns:
        df["afmParticleId"] = np.arange(len(df), dtype=np.int64)
    if "rlnTomoName" not in df.columns:
        if default_tomo not in (None, name):
            raise InputError(path, "rlnTomoName", f"particles of tomogram '{name}'; the table names no tomogram")
        return df
    rows = df[df["rlnTomoName"].astype(str) == name]
    if rows.empty:
        names = sorted(df["rlnTomoName"].astype(str).unique())
        raise InputError(path, "rlnTomoName", f"particles of tomogram '{name}'; the table has {names[:10]}")
    return rows.reset_index(drop=True)


def _centred_to_pixels(
    path: Path, df: pd.DataFrame, pixel_size: float | None, shapes: Mapping[str, tuple[int, int, int]] | None
) -> pd.DataFrame:
    """RELION 5 centred Å -> pixels: ``x_px = x_Å / pixel_size + size_x / 2`` (RELION C++)."""
    if pixel_size is not None:
        df["afmPixelSize"] = float(pixel_size)
    px = pd.to_numeric(df["afmPixelSize"], errors="coerce").to_numpy(float)
    if not np.all(np.isfinite(px) & (px > 0)):
        raise InputError(path, "rlnTomoTiltSeriesPixelSize", "a pixel size (optics block or --pixel-size) to convert rlnCenteredCoordinate*Angst to pixels")
    if shapes is None or "rlnTomoName" not in df.columns:
        raise InputError(path, "rlnCenteredCoordinateXAngst", "the tomogram shapes (and rlnTomoName) to convert centred Å coordinates to pixels")
    names = df["rlnTomoName"].astype(str)
    missing = sorted(set(names) - set(shapes))
    if missing:
        raise InputError(path, "rlnTomoName", f"tomograms with known shapes for centred coordinates; no shape for {missing[:5]} (known: {sorted(shapes)[:10]})")
    sizes = np.array([tuple(shapes[n])[::-1] for n in names], dtype=float)  # (nx, ny, nz)
    for i, (src, dst) in enumerate(zip(CENTRED, COORDS)):
        values = _numeric(path, df, src)
        df[dst] = values / px + sizes[:, i] / 2
    return df


def _numeric(path: Path | None, df: pd.DataFrame, col: str) -> np.ndarray:
    values = pd.to_numeric(df[col], errors="coerce")
    bad = values.isna() & df[col].notna()
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())[:5].tolist()
        raise InputError(path, col, f"numbers, got non-numeric values in rows {rows} (0-based)")
    return values.to_numpy(float)


def _canonicalise(path: Path | None, df: pd.DataFrame, pixel_size: float | None, default_tomo: str | None) -> pd.DataFrame:
    if not all(c in df.columns for c in COORDS):
        raise InputError(
            path, COORDS[0] if not any(c in df.columns for c in COORDS) else next(c for c in COORDS if c not in df.columns),
            f"coordinate columns: {', '.join(COORDS)} (RELION 4), {', '.join(CENTRED)} (RELION 5) "
            f"or x, y, z (CSV); found {list(df.columns)[:12]}",
        )
    for col in COORDS:
        df[col] = _numeric(path, df, col)
    nan_rows = np.flatnonzero(~np.isfinite(df[COORDS].to_numpy(float)).all(axis=1))
    if len(nan_rows):
        raise InputError(path, "rlnCoordinateX/Y/Z", f"finite coordinates; NaN or missing in {len(nan_rows)} rows (0-based): {nan_rows[:10].tolist()}")
    # tomogram name
    if "rlnTomoName" not in df.columns:
        if "rlnMicrographName" in df.columns:
            df["rlnTomoName"] = [_strip_suffix(Path(str(n)).name) for n in df["rlnMicrographName"]]
        elif default_tomo is not None:
            df["rlnTomoName"] = default_tomo
        else:
            raise InputError(path, "rlnTomoName", "a tomogram name column (rlnTomoName, or 'tomo' in CSV), or a single tomogram to default to")
    names = df["rlnTomoName"]
    unnamed = np.flatnonzero((names.isna() | (names.astype(str).str.strip() == "")).to_numpy())
    if len(unnamed):
        raise InputError(path, "rlnTomoName", f"a tomogram name in every row; rows (0-based) {unnamed[:10].tolist()} "
                                              f"have none (empty, or nan / NaN, which STAR files read as missing)")
    df["rlnTomoName"] = names.astype(str)
    # angles
    for col in ANGLES:
        df[col] = _numeric(path, df, col) if col in df.columns else 0.0
    bad = np.flatnonzero(~np.isfinite(df[ANGLES].to_numpy(float)).all(axis=1))
    if len(bad):
        raise InputError(path, "rlnAngleRot/Tilt/Psi", f"finite angles; NaN in rows (0-based) {bad[:10].tolist()}")
    # classes
    if "afmClassName" in df.columns:
        df["afmClassName"] = df["afmClassName"].fillna("").astype(str)
    else:
        df["afmClassName"] = ""
    if "rlnClassNumber" in df.columns:
        df["rlnClassNumber"] = _integers(path, df, "rlnClassNumber")
    else:
        names = sorted(set(df["afmClassName"]) - {""})
        number = {n: i + 1 for i, n in enumerate(names)}
        df["rlnClassNumber"] = np.array([number.get(n, 0) for n in df["afmClassName"]], dtype=np.int64)
    # pixel size
    df["afmPixelSize"] = _numeric(path, df, "afmPixelSize") if "afmPixelSize" in df.columns else np.nan
    if pixel_size is not None:
        have = df["afmPixelSize"].to_numpy(float)
        known = np.isfinite(have)
        off = known & (np.abs(have - pixel_size) > _PIXEL_TOLERANCE * pixel_size)
        if off.any():
            raise InputError(path, "afmPixelSize", f"a pixel size matching the given {pixel_size:g} Å within 1%, file says {have[off][0]:g} Å")
        df.loc[~known, "afmPixelSize"] = float(pixel_size)
    # ids
    if "afmParticleId" in df.columns:
        df["afmParticleId"] = _integers(path, df, "afmParticleId")
        if not df["afmParticleId"].is_unique:
            dup = df["afmParticleId"][df["afmParticleId"].duplicated()].iloc[0]
            raise InputError(path, "afmParticleId", f"unique ids, got {dup} more than once")
    else:
        df["afmParticleId"] = np.arange(len(df), dtype=np.int64)
    # optics groups
    if "rlnOpticsGroup" in df.columns:
        df["rlnOpticsGroup"] = _integers(path, df, "rlnOpticsGroup")
    else:
        codes, _ = pd.factorize(df["afmPixelSize"], use_na_sentinel=False)
        df["rlnOpticsGroup"] = codes.astype(np.int64) + 1
    ordered = CANONICAL + [c for c in df.columns if c not in CANONICAL]
    return df[ordered]


def _integers(path: Path | None, df: pd.DataFrame, col: str) -> np.ndarray:
    values = _numeric(path, df, col)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) > 2.0**53)  # exact in float
    if bad.any():
        raise InputError(path, col, f"integers, got {df[col].iloc[int(np.flatnonzero(bad)[0])]!r} in row {int(np.flatnonzero(bad)[0])} (0-based)")
    return values.astype(np.int64)


def _star_keeps(text: str) -> bool:
    """True when a STAR file written with ``text`` as a value reads back ``text`` itself."""
    return (text not in STAR_MISSING and not text.startswith("_") and text == text.strip()
            and not any(c in text for c in "\"'#\t\n\r"))


def _strip_suffix(name: str) -> str:
    for suffix in _NAME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name

