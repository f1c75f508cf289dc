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
terms of the source. ``df.attrs["source"]`` records the input format and path,
``df.attrs["optics"]`` the input optics block and ``df.attrs["blocks"]`` every other
block (e.g. ``data_general``) with ``df.attrs["block_order"]`` their order in the file;
:func:`write_particles` writes them back.

RELION's particle frame (:mod:`affinitomo.io.relion`): origin shifts (``rlnOriginX/Y/ZAngst``,
or RELION 3's ``rlnOriginX/Y/Z`` in pixels) are folded into the coordinates at read time,
``centre = coordinate - A_subtomogram @ origin / pixel_size`` (RELION's convention; for
RELION 5 the same shift in Å is taken off the centred coordinate), and RELION 5 subtomogram
orientations are composed into the pose, ``A = A_subtomogram @ A_angle``. The canonical
table then holds zero origins and zero subtomogram angles (the columns stay), so that no
later reader applies them twice.

Tomogram size and centred coordinates: ``afmTomoSizeX/Y/Z`` hold the size (pixels) of the
tomogram the coordinates refer to, filled from ``tomogram_shapes`` and by extraction. Where
the size and pixel size are known, the table (and every table written) carries RELION 5's
``rlnCenteredCoordinateX/Y/ZAngst = (x - size_x / 2) * pixel_size`` beside the pixel
coordinates.

Binned tomograms: pixel coordinates of a RELION 4 table are in tilt-series pixels
(``rlnTomoTiltSeriesPixelSize``), or in the pixels named by ``coordinate_pixel_size``.
Read for a tomogram of another pixel size (``pixel_size``, e.g. its MRC header), they are
rescaled by ``coordinate_pixel / pixel_size`` (no rescale within 1%).

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
from affinitomo.io.relion import ORIGINS_ANGST, ORIGINS_PIXEL, SUBTOMO_ANGLES, compose_orientations, origin_shift

log = logging.getLogger(__name__)

COORDS = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
CENTRED = ["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"]
TOMO_SIZE = ["afmTomoSizeX", "afmTomoSizeY", "afmTomoSizeZ"]
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
    coordinate_pixel_size: float | None = None,
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
    coordinates, it must agree within 1% (pixel coordinates are in the file's units),
    unless the coordinates are rescaled (tilt-series pixels, ``coordinate_pixel_size``).
    For Å coordinates (RELION 5, copick) it takes precedence over the file's, since
    those can be expressed in any pixel size. The pixel size comes from, in order:
    a per-particle ``afmPixelSize`` column, the optics block
    (``rlnTomoTiltSeriesPixelSize``, then ``rlnImagePixelSize``), a per-particle
    ``rlnImagePixelSize`` / ``rlnTomoTiltSeriesPixelSize`` column, the argument.

    ``coordinate_pixel_size`` (Å) states the pixels of pixel coordinates where the file's
    optics do not (it wins over them; an ``afmPixelSize`` column must agree). Coordinates
    in tilt-series pixels (``rlnTomoTiltSeriesPixelSize``) or in ``coordinate_pixel_size``
    pixels are rescaled to ``pixel_size`` pixels when the two differ by more than 1%.

    Origin shifts and subtomogram orientations are folded into the coordinates and angles
    (module docstring). With ``tomogram_shapes``, ``afmTomoSizeX/Y/Z`` and the centred Å
    coordinates are filled.

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
    attrs = {k: v for k, v in df.attrs.items() if k in ("optics", "blocks", "block_order")}
    pixel_source = df.attrs.get("pixel_source")
    df = df.reset_index(drop=True)
    if only_tomo is not None:
        df = _only_tomogram(path, df, only_tomo, default_tomo)
    rescale = False
    if fmt == "star" and all(c in df.columns for c in CENTRED) and not all(c in df.columns for c in COORDS):
        fmt = "relion5"
        df = _centred_to_pixels(path, df, pixel_size, tomogram_shapes)
    elif fmt != "copick":
        rescale = _coordinate_pixels(path, df, coordinate_pixel_size, pixel_source, pixel_size)
    df = _canonicalise(path, df, None if rescale else pixel_size, default_tomo)
    _to_tomogram_frame(path, df)
    if rescale:
        scale = df["afmPixelSize"].to_numpy(float) / float(pixel_size)
        df[COORDS] = df[COORDS].to_numpy(float) * scale[:, None]
        if all(c in df.columns for c in TOMO_SIZE):
            df[TOMO_SIZE] = _numeric_block(path, df, TOMO_SIZE) * scale[:, None]
        df["afmPixelSize"] = float(pixel_size)
        log.info("rescaled the coordinates of %s to %g Å pixels (x %s)", path, pixel_size,
                 ", ".join(f"{s:g}" for s in np.unique(scale)[:5]))
    if tomogram_shapes is not None:
        _fill_sizes(df, tomogram_shapes)
    df = with_centred(df)
    df.attrs = attrs
    df.attrs["source"] = {"format": "relion4" if fmt == "star" else fmt, "path": str(path)}
    return df


def write_particles(path: str | Path, df: pd.DataFrame) -> Path:
    """Write ``df`` as a STAR file (``data_optics`` + ``data_particles``), atomically.

    Optics groups: the table's ``rlnOpticsGroup`` when each group has one pixel
    size, else one group per distinct ``afmPixelSize``. The optics block keeps every
    column of ``df.attrs["optics"]`` (voltage, Cs, group names, ``rlnTomoTiltSeriesPixelSize``
    as given) when its groups cover the table's; ``rlnImagePixelSize`` is the tomogram pixel
    (``afmPixelSize``), and ``rlnTomoTiltSeriesPixelSize`` too where the input gave none. The
    blocks of ``df.attrs["blocks"]`` (e.g. ``data_general``) are written in their input order.
    Where ``afmTomoSizeX/Y/Z`` and ``afmPixelSize`` are known, ``rlnCenteredCoordinate*Angst``
    are written beside the pixel coordinates. Floats are written with 6
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
    particles = with_centred(df.copy())
    particles.attrs = {}
    pixel = particles["afmPixelSize"].astype(float) if "afmPixelSize" in particles else pd.Series(np.nan, index=df.index)
    groups = particles.get("rlnOpticsGroup")
    consistent = groups is not None and pixel.groupby(groups.to_numpy(), dropna=False).nunique(dropna=False).max() <= 1
    if not consistent:
        codes, uniques = pd.factorize(pixel, use_na_sentinel=False)
        particles["rlnOpticsGroup"] = codes.astype(np.int64) + 1
    group_ids = sorted(pd.unique(particles["rlnOpticsGroup"]))
    optics = _optics_block(particles, pixel, group_ids, df.attrs.get("optics") if consistent else None)
    for col in particles.columns:  # booleans as 0/1 so that every STAR reader understands them
        if particles[col].dtype == bool:
            particles[col] = particles[col].astype(np.int64)
    blocks = {"optics": optics, "particles": particles}
    others = df.attrs.get("blocks") or {}
    order = [b for b in df.attrs.get("block_order") or [] if b in others or b in blocks]
    order += [b for b in [*others, "particles"] if b not in order]
    if "optics" not in order:  # an input without optics: optics first, as RELION writes them
        order.insert(order.index("particles"), "optics")
    with atomic_path(path) as tmp:
        starfile.write({b: others[b] if b in others else blocks[b] for b in order}, tmp, na_rep="nan")
    return path


def _optics_block(particles: pd.DataFrame, pixel: pd.Series, group_ids: list, source: pd.DataFrame | None) -> pd.DataFrame:
    """``data_optics`` for ``group_ids``: the source block's columns where it covers them, the tomogram pixel
    (``pixel`` per particle) as ``rlnImagePixelSize`` and, where the source has none, ``rlnTomoTiltSeriesPixelSize``."""
    pixel_of = pixel.groupby(particles["rlnOpticsGroup"].to_numpy(), dropna=False).first()
    pixels = [pixel_of.get(g, np.nan) for g in group_ids]
    optics = pd.DataFrame({"rlnOpticsGroup": group_ids})
    if isinstance(source, pd.DataFrame) and "rlnOpticsGroup" in source and len(source):
        numbers = pd.to_numeric(source["rlnOpticsGroup"], errors="coerce")
        if numbers.is_unique and set(group_ids) <= set(numbers):
            optics = optics.merge(source.assign(rlnOpticsGroup=numbers.astype(np.int64)), on="rlnOpticsGroup", how="left")
            optics = optics[list(source.columns)]  # the input's column order
    if "rlnOpticsGroupName" not in optics:
        optics.insert(1, "rlnOpticsGroupName", [f"opticsGroup{g}" for g in group_ids])
    if "rlnTomoTiltSeriesPixelSize" not in optics:
        optics["rlnTomoTiltSeriesPixelSize"] = pixels
    optics["rlnImagePixelSize"] = pixels
    return optics


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


def pixel_to_centred(df: pd.DataFrame, tomogram_shapes: Mapping[str, tuple[int, int, int]] | None = None) -> pd.DataFrame:
    """RELION 5 centred Å coordinates of a canonical table (inverse of the reader's conversion).

    ``x_Å = (x_px - size_x / 2) * pixel_size``; shapes are ``(nz, ny, nx)`` per tomogram name,
    or, without ``tomogram_shapes``, the table's ``afmTomoSizeX/Y/Z`` (NaN where unknown).
    """
    out = pd.DataFrame(index=df.index)
    if tomogram_shapes is None:
        sizes = df[TOMO_SIZE].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    else:
        sizes = np.array([tomogram_shapes[name][::-1] for name in df["rlnTomoName"]], dtype=float)
    px = pd.to_numeric(df["afmPixelSize"], errors="coerce").to_numpy(float)
    for i, (src, dst) in enumerate(zip(COORDS, CENTRED)):
        out[dst] = (df[src].to_numpy(float) - sizes[:, i] / 2) * px
    return out


def with_centred(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``rlnCenteredCoordinate*Angst`` set from the pixel coordinates wherever
    ``afmTomoSizeX/Y/Z`` and ``afmPixelSize`` are known (other rows keep their values, NaN when
    the column is added). ``df`` itself when it lacks the size columns; changed in place otherwise."""
    if not all(c in df.columns for c in (*TOMO_SIZE, *COORDS, "afmPixelSize", "rlnTomoName")):
        return df
    centred = pixel_to_centred(df)
    known = np.isfinite(centred.to_numpy(float)).all(axis=1)
    if not known.any():
        return df
    for col in CENTRED:
        if col in df.columns:
            old = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
            df[col] = np.where(known, centred[col].to_numpy(float), old)
        else:
            df[col] = np.where(known, centred[col].to_numpy(float), np.nan)
    return df


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
    particles_name = next(k for k, v in tables.items() if v is particles)
    particles = particles.copy()
    optics = tables.get("optics")
    if "afmPixelSize" in particles.columns:
        particles.attrs["pixel_source"] = "afmPixelSize"
    else:
        particles["afmPixelSize"], particles.attrs["pixel_source"] = _star_pixel_size(path, particles, optics)
    if optics is not None:
        particles.attrs["optics"] = optics.copy()
    particles.attrs["blocks"] = {k: v for k, v in blocks.items() if k not in (particles_name, "optics")}
    particles.attrs["block_order"] = ["particles" if k == particles_name else k for k in blocks]
    return particles, "star"


def _star_pixel_size(path: Path, particles: pd.DataFrame, optics: pd.DataFrame | None) -> tuple[np.ndarray, str | None]:
    """Pixel size per particle and the column it comes from (None when unknown)."""
    n = len(particles)
    if optics is not None and "rlnOpticsGroup" in optics.columns:
        for col in ("rlnTomoTiltSeriesPixelSize", "rlnImagePixelSize"):
            if col in optics.columns:
                sizes = _numeric(path, optics, col)
                if "rlnOpticsGroup" not in particles.columns:
                    if len(optics) == 1:
                        return np.full(n, sizes[0]), col
                    raise InputError(path, "rlnOpticsGroup", "an optics group per particle (the optics block has several)")
                lookup = dict(zip(_integers(path, optics, "rlnOpticsGroup").tolist(), sizes))
                groups = _integers(path, particles, "rlnOpticsGroup")
                unknown = sorted(set(groups.tolist()) - set(lookup))
                if unknown:
                    raise InputError(path, "rlnOpticsGroup", f"groups listed in data_optics, got unknown {unknown[:5]}")
                return np.array([lookup[g] for g in groups.tolist()], dtype=float), col
    for col in ("rlnImagePixelSize", "rlnTomoTiltSeriesPixelSize"):
        if col in particles.columns:
            return pd.to_numeric(particles[col], errors="coerce").to_numpy(float), col
    return np.full(n, np.nan), None


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


def _coordinate_pixels(path: Path, df: pd.DataFrame, given: float | None, source: str | None,
                       pixel_size: float | None) -> bool:
    """Set ``afmPixelSize`` to the pixels of the coordinates (``given`` wins over the optics); True
    when they are to be rescaled to ``pixel_size`` pixels (tilt-series or given pixels, > 1% apart)."""
    if given is not None:
        if not (np.isfinite(given) and given > 0):
            raise InputError(path, "coordinate_pixel_size", f"a positive pixel size in Å, got {given}")
        if source == "afmPixelSize" or (source is None and "afmPixelSize" in df.columns):  # the table's own column
            have = _numeric(path, df, "afmPixelSize")
            off = np.isfinite(have) & (np.abs(have - given) > _PIXEL_TOLERANCE * given)
            if off.any():
                raise InputError(path, "afmPixelSize", f"a pixel size matching the coordinate pixel size {given:g} Å "
                                                       f"within 1%, file says {have[off][0]:g} Å")
        df["afmPixelSize"] = float(given)
    elif source != "rlnTomoTiltSeriesPixelSize":
        return False
    if pixel_size is None:
        return False
    have = _numeric(path, df, "afmPixelSize")
    if not (np.abs(have - pixel_size) > _PIXEL_TOLERANCE * pixel_size).any():
        return False
    if not np.all(np.isfinite(have) & (have > 0)):
        raise InputError(path, source or "afmPixelSize", "a positive pixel size for every particle, to rescale "
                                                         f"the coordinates to the tomogram's {pixel_size:g} Å pixels")
    return True


def _to_tomogram_frame(path: Path, df: pd.DataFrame) -> None:
    """Compose subtomogram orientations into ``rlnAngle*`` and fold origin shifts into the
    coordinates (and centred Å columns), in place; those columns are then 0 (see :mod:`affinitomo.io.relion`)."""
    subtomo = None
    if any(c in df.columns for c in SUBTOMO_ANGLES):
        subtomo = _numeric_block(path, df, SUBTOMO_ANGLES)
        if not np.isfinite(subtomo).all():
            raise InputError(path, SUBTOMO_ANGLES[int(np.flatnonzero(~np.isfinite(subtomo).all(axis=0))[0])],
                             "finite subtomogram angles in every row")
        if np.any(subtomo != 0):
            df[ANGLES] = compose_orientations(subtomo, df[ANGLES].to_numpy(float))
        df[SUBTOMO_ANGLES] = 0.0
    kinds = [cols for cols in (ORIGINS_ANGST, ORIGINS_PIXEL) if any(c in df.columns for c in cols)]
    if len(kinds) > 1:
        raise InputError(path, ORIGINS_PIXEL[0], "one kind of origin shift: rlnOriginX/Y/ZAngst (Å) or "
                                                 "rlnOriginX/Y/Z (pixels), not both")
    if not kinds:
        return
    cols = kinds[0]
    origins = _numeric_block(path, df, cols)
    missing = ~np.isfinite(origins)
    if missing.any():
        raise InputError(path, cols[int(np.flatnonzero(missing.any(axis=0))[0])], "an origin shift in every row (numbers, not NaN)")
    px = df["afmPixelSize"].to_numpy(float)
    shifted = (origins != 0).any(axis=1)
    if shifted.any():
        shift = origin_shift(origins, subtomo)
        if cols is ORIGINS_ANGST:
            unknown = shifted & ~(np.isfinite(px) & (px > 0))
            if unknown.any():
                raise InputError(path, cols[0], f"a pixel size (afmPixelSize, optics rlnTomoTiltSeriesPixelSize or "
                                                f"rlnImagePixelSize, or --pixel-size) to convert origin shifts in Å "
                                                f"to pixels; row {int(np.flatnonzero(unknown)[0])} (0-based) has none")
            shift_px, shift_a = np.where(shifted[:, None], shift / np.where(shifted, px, 1.0)[:, None], 0.0), shift
        else:
            shift_px, shift_a = shift, shift * px[:, None]
        df[COORDS] = df[COORDS].to_numpy(float) - shift_px
        if all(c in df.columns for c in CENTRED):
            centred = _numeric_block(path, df, CENTRED)
            df[CENTRED] = np.where(np.isfinite(shift_a), centred - shift_a, centred)
    df[cols] = 0.0


def _fill_sizes(df: pd.DataFrame, shapes: Mapping[str, tuple[int, int, int]]) -> None:
    """``afmTomoSizeX/Y/Z`` from the shapes ``(nz, ny, nx)`` of the tables' tomograms (rows of other
    tomograms keep their sizes, NaN in columns it adds)."""
    sizes = np.array([tuple(shapes[n])[::-1] if n in shapes else (np.nan,) * 3 for n in df["rlnTomoName"]], dtype=float)
    if all(c in df.columns for c in TOMO_SIZE):
        old = df[TOMO_SIZE].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        sizes = np.where(np.isfinite(sizes), sizes, old)
    df[TOMO_SIZE] = sizes.reshape(len(df), 3)


def _numeric_block(path: Path | None, df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """(n, len(cols)) floats of ``cols``; InputError naming a non-numeric or absent column."""
    absent = [c for c in cols if c not in df.columns]
    if absent:
        raise InputError(path, absent[0], f"all of {', '.join(cols)} (found {[c for c in cols if c in df.columns]})")
    return np.stack([_numeric(path, df, c) for c in cols], axis=1) if len(df) else np.zeros((0, len(cols)))


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


def concat_tables(tables: list[pd.DataFrame], paths: list[str | Path]) -> pd.DataFrame:
    """Per-tomogram particle tables, concatenated in order; particle ids must stay unique."""
    if not tables:
        raise InputError("--particles", None, "at least one particle table")
    plain = [t.copy() for t in tables]
    for t in plain:
        t.attrs = {}  # per-file source details (pandas cannot merge them)
    table = pd.concat(plain, ignore_index=True)
    table.attrs = _shared_blocks(tables)
    ids = table["afmParticleId"]
    if not ids.is_unique:
        dup = int(ids[ids.duplicated()].iloc[0])
        where = [str(p) for p, t in zip(paths, tables) if (t["afmParticleId"] == dup).any()]
        raise InputError(where[-1], "afmParticleId",
                         f"ids unique across the gathered tables; {dup} is also in {where[0]} (tables of two runs?)")
    return table


def _shared_blocks(tables: list[pd.DataFrame]) -> dict:
    """The input optics and other STAR blocks of the tables when every table has the same ones, else {}."""
    def same(a: object, b: object) -> bool:
        if isinstance(a, pd.DataFrame) or isinstance(b, pd.DataFrame):
            return isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame) and a.equals(b)
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return a == b

    keys = ("optics", "blocks", "block_order")
    first = {k: tables[0].attrs[k] for k in keys if k in tables[0].attrs}
    if all(set(k for k in keys if k in t.attrs) == set(first) and all(same(first[k], t.attrs[k]) for k in first)
           for t in tables[1:]):
        return first
    return {}
