"""Subtomograms extracted elsewhere, written as the extract stage writes its own.

Two sources:

- a RELION subtomogram STAR file: ``rlnImageName`` names each particle's MRC file (relative
  to the STAR file's folder, or absolute) or ``k@stack.mrcs`` (volume ``k``, 1-based, of a
  stack of volumes); other columns as in any particle table (``afmClassName`` = label).
  Without ``rlnTomoName`` every particle belongs to one pseudo-tomogram named after the STAR
  file's stem;
- a folder of per-particle MRC files (``.mrc``, ``.mrcs``, ``.map``), as the reference
  Affinity-VAE lays out its data: ``<class>_<anything>.mrc``. The pseudo-tomogram is named
  after the folder. The class before the first ``_`` becomes the ``afmClassName`` label only
  when asked (``labels_from_names``): such names are often ground truth, not training labels.

The output is the extract stage's (docs/architecture.md, stage 2): ``subtomos.npy`` (float32
``N x B x B x B``, normalised, masked and inverted as :mod:`affinitomo.extract` does) and
``particles.star`` (canonical table, row i = stack row i, ``afmEdge``). Boxes of another size
than ``box`` are either resampled (``scale``: about the centre voxel ``N//2``, anti-aliased when
shrinking; the pixel size grows by ``N/box``) or cut or padded about the centre (``crop``;
the pixel size stays, padded voxels are left out of the statistics and 0 after normalisation,
``afmEdge`` 1). Coordinates: the STAR file's where it gives them (scaled from its pixel size
to the output's), else the box centre ``box//2``. Pixel size: the MRC headers', else the one
given, else the STAR file's ``rlnImagePixelSize``. Subtomograms holding NaN or Inf are left out
of stack and table, with a warning, as extraction does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

from affinitomo.density.masks import spherical_mask
from affinitomo.errors import InputError
from affinitomo.io.particles import COORDS, STRING_COLUMNS, canonicalise
from affinitomo.io.subtomos import CHUNK_BYTES, ExtractionOptions, normalise_boxes, write_extracted
from affinitomo.io.volumes import MRC_SUFFIXES, open_mrc
from affinitomo.progress import progress_bar

log = logging.getLogger(__name__)

RESIZE_MODES = ("scale", "crop")
#: Suffixes of the per-particle files of a folder source.
PARTICLE_SUFFIXES = (".mrc", ".mrcs", ".map")
PIXEL_TOLERANCE = 0.01


@dataclass
class SubtomogramSource:
    """Where each particle's volume is: ``files[i]``, volume ``index[i]`` (0-based) of that stack, or
    the whole file where ``index[i]`` is -1."""

    path: Path  # the STAR file or the folder
    table: pd.DataFrame  # canonical table; coordinates are placeholders unless coordinates_given
    files: list[Path]
    index: np.ndarray
    coordinates_given: bool
    image_pixel_size: np.ndarray  # (N,) the STAR file's rlnImagePixelSize, NaN where none
    coordinate_pixel_size: np.ndarray  # (N,) pixel size of the STAR file's coordinates, NaN where none


def read_subtomogram_source(path: str | Path, *, labels_from_names: bool = False) -> SubtomogramSource:
    """The particles of a subtomogram STAR file or folder of MRC files; no volume is opened."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, labels_from_names)
    if not path.is_file():
        raise InputError(path, None, "a subtomogram STAR file or a folder of per-particle MRC files (not found)")
    return _read_star_source(path, labels_from_names)


def pseudo_tomograms(path: str | Path) -> list[str]:
    """The pseudo-tomogram names of a subtomogram source (``rlnTomoName``s, or its stem), sorted."""
    return sorted(set(read_subtomogram_source(path).table["rlnTomoName"].astype(str)))


def import_subtomograms(
    path: str | Path,
    out_dir: str | Path,
    *,
    box: int | None = None,
    tomo: str | None = None,
    labels_from_names: bool = False,
    pixel_size: float | None = None,
    resize: str = "scale",
    normalise: bool = True,
    invert: bool = False,
    mask_radius: float | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Write ``out_dir/subtomos.npy`` and ``out_dir/particles.star`` from a subtomogram source.

    ``box`` is the output box (default: the files'); ``tomo`` keeps one pseudo-tomogram's
    particles (ids are numbered over the whole source first); ``pixel_size`` (Å) is used where
    the MRC headers set none; ``resize`` (``scale`` | ``crop``) says how boxes of another size
    are brought to ``box``. Every file is checked before anything is written. Returns the
    written table.
    """
    if resize not in RESIZE_MODES:
        raise InputError(None, "resize", f"one of {RESIZE_MODES}, got {resize!r}")
    source = read_subtomogram_source(path, labels_from_names=labels_from_names)
    rows = _select(source, tomo)
    volumes, n_in, header_px = _check_volumes(source, rows)
    px = _pixel_size(source, rows, header_px, pixel_size)
    n_out = n_in if box is None else int(box)
    opts = ExtractionOptions(n_out, 1, normalise, invert, mask_radius)
    opts.check()
    out_px = px * n_in / n_out if resize == "scale" else px
    if n_out != n_in:
        how = (f"resampled to {n_out}^3 (pixel size {px:g} -> {out_px:g} Å)" if resize == "scale"
               else ("cut to" if n_out < n_in else "padded to") + f" {n_out}^3 about the centre (pixel size {px:g} Å)")
        log.info("%s: boxes of %d^3 %s", source.path, n_in, how)
    table = _output_table(source, rows, n_out, out_px, padded=resize == "crop" and n_out > n_in)

    out_dir = Path(out_dir)
    def non_finite(bad: np.ndarray) -> None:
        if bad.all():
            raise InputError(source.path, "voxels", f"finite voxels in at least one subtomogram; all {bad.size} hold NaN or Inf")
        names = [str(source.files[r]) for r in rows[bad][:5]]
        log.warning("skipped %d of %d subtomograms holding non-finite voxels (NaN or Inf), e.g. %s; they are "
                    "absent from the stack and the table", int(bad.sum()), bad.size, names)

    table = write_extracted(out_dir, table, lambda tmp: _write_stack(tmp, source, rows, volumes, n_in, px, out_px, opts,
                                                                     resize, progress), non_finite)
    log.info("wrote %d subtomograms of %d^3 from %s to %s", len(table), n_out, source.path, out_dir / "subtomos.npy")
    return table


# --------------------------------------------------------------------------- sources


def _read_folder(folder: Path, labels_from_names: bool) -> SubtomogramSource:
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in PARTICLE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputError(folder, "files", f"a folder holding per-particle MRC files ({', '.join(PARTICLE_SUFFIXES)}), found none")
    n = len(files)
    df = pd.DataFrame({"rlnImageName": [f.name for f in files],
                       "afmClassName": [class_from_name(f) if labels_from_names else "" for f in files]})
    table = _canonical(folder, df, folder.name)
    nan = np.full(n, np.nan)
    return SubtomogramSource(folder, table, files, np.full(n, -1, dtype=np.int64), False, nan, nan.copy())


def class_from_name(path: Path) -> str:
    """The class of a per-particle file named ``<class>_<anything>``: the stem before the first ``_``."""
    return path.stem.split("_", 1)[0]


def _read_star_source(path: Path, labels_from_names: bool) -> SubtomogramSource:
    particles, optics = _star_blocks(path)
    if "rlnImageName" not in particles.columns:
        raise InputError(path, "rlnImageName", "a subtomogram STAR file: each particle's MRC file, or k@stack.mrcs")
    names = particles["rlnImageName"].astype(object)
    files, index = [], np.zeros(len(particles), dtype=np.int64)
    for i, name in enumerate(names):
        text = "" if pd.isna(name) else str(name).strip()
        if not text:
            raise InputError(path, "rlnImageName", f"a file name in every row; row {i} (0-based) has none")
        number, at, rest = text.partition("@")
        if at and number.strip().isdigit():
            k = int(number)
            if k < 1:
                raise InputError(path, "rlnImageName", f"a 1-based index into the stack; row {i} names {text!r}")
            index[i], text = k - 1, rest.strip()
        else:
            index[i] = -1  # the file is the particle's volume
        f = Path(text)
        files.append(f if f.is_absolute() else path.parent / f)
    df = particles.copy()
    if labels_from_names:
        stacked = np.flatnonzero(index >= 0)
        if len(stacked):
            raise InputError(path, "rlnImageName", f"per-particle files to take class names from; row {int(stacked[0])} "
                                                   "is an index into a stack")
        df["afmClassName"] = [class_from_name(f) for f in files]
        df = df.drop(columns=["rlnClassNumber"], errors="ignore")
    given = all(c in df.columns for c in COORDS)
    if not given:
        df = df.drop(columns=[c for c in COORDS if c in df.columns])
    image_px = _star_pixel_size(path, df, optics, "rlnImagePixelSize")
    ts_px = _star_pixel_size(path, df, optics, "rlnTomoTiltSeriesPixelSize")
    coord_px = np.where(np.isfinite(ts_px), ts_px, image_px)
    if "afmPixelSize" in df.columns:  # a table written by affinitomo: its coordinates' pixel size
        own = pd.to_numeric(df["afmPixelSize"], errors="coerce").to_numpy(float)
        coord_px = np.where(np.isfinite(own), own, coord_px)
        df = df.drop(columns=["afmPixelSize"])
    df = df.drop(columns=["rlnOpticsGroup"], errors="ignore")  # regrouped by the output pixel size
    table = _canonical(path, df, path.stem)
    return SubtomogramSource(path, table, files, index, given, image_px, coord_px)


def _star_blocks(path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The particle block (the one with rlnImageName, else ``particles``) and the optics block."""
    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=STRING_COLUMNS)
    except Exception as exc:  # noqa: BLE001 - whatever a broken STAR file raises is bad input
        raise InputError(path, None, f"a readable STAR file ({type(exc).__name__}: {exc})") from None
    tables = {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame)}
    particles = next((v for k, v in tables.items() if k != "optics" and "rlnImageName" in v.columns), None)
    if particles is None:
        particles = next((tables[k] for k in ("particles", "") if k in tables), None)
    if particles is None or len(particles) == 0:
        raise InputError(path, "data_particles", "a STAR file with a loop_ block of particles (rlnImageName)")
    return particles.reset_index(drop=True), tables.get("optics")


def _star_pixel_size(path: Path, df: pd.DataFrame, optics: pd.DataFrame | None, col: str) -> np.ndarray:
    """``col`` per particle: the particle's own column, else its optics group's; NaN where none."""
    n = len(df)
    if col in df.columns:
        return pd.to_numeric(df[col], errors="coerce").to_numpy(float)
    if optics is None or col not in optics.columns:
        return np.full(n, np.nan)
    sizes = pd.to_numeric(optics[col], errors="coerce").to_numpy(float)
    if "rlnOpticsGroup" not in df.columns or "rlnOpticsGroup" not in optics.columns:
        if len(optics) == 1:
            return np.full(n, sizes[0])
        raise InputError(path, "rlnOpticsGroup", "an optics group per particle (the optics block has several)")
    lookup = dict(zip(pd.to_numeric(optics["rlnOpticsGroup"], errors="coerce").tolist(), sizes))
    groups = pd.to_numeric(df["rlnOpticsGroup"], errors="coerce").tolist()
    unknown = sorted({g for g in groups if g not in lookup}, key=str)
    if unknown:
        raise InputError(path, "rlnOpticsGroup", f"groups listed in data_optics, got unknown {unknown[:5]}")
    return np.array([lookup[g] for g in groups], dtype=float)


def _canonical(path: Path, df: pd.DataFrame, default_tomo: str) -> pd.DataFrame:
    """The canonical table of a source; placeholder coordinates 0 where it gives none."""
    df = df.copy()
    for col in COORDS:
        if col not in df.columns:
            df[col] = 0.0
    return canonicalise(df, source=path, default_tomo=default_tomo)


def _select(source: SubtomogramSource, tomo: str | None) -> np.ndarray:
    names = source.table["rlnTomoName"].astype(str).to_numpy()
    if tomo is None:
        return np.arange(len(names))
    rows = np.flatnonzero(names == tomo)
    if not len(rows):
        raise InputError(source.path, "rlnTomoName", f"particles of pseudo-tomogram '{tomo}'; the source has {sorted(set(names))[:10]}")
    return rows


# --------------------------------------------------------------------------- volumes


def _open_volumes(path: Path) -> tuple[np.ndarray, float | None]:
    """An MRC file as a memory-mapped ``(n, B, B, B)`` array of cubic volumes, and its voxel size."""
    if path.suffix.lower() not in MRC_SUFFIXES:
        raise InputError(path, "suffix", f"an MRC file ({', '.join(sorted(MRC_SUFFIXES))})")
    data, px = open_mrc(path)
    if data.ndim == 3 and data.shape[1] == data.shape[2] and data.shape[0] % data.shape[1] == 0:
        data = data.reshape(data.shape[0] // data.shape[1], *(data.shape[1],) * 3)  # volumes along z
    if data.ndim != 4 or not (data.shape[1] == data.shape[2] == data.shape[3]):
        raise InputError(path, "nx/ny/nz", f"cubic subtomograms (a volume of B^3, or a stack of them), got shape (z, y, x) {data.shape[-3:]}")
    if data.dtype.kind not in "fiu":
        raise InputError(path, "mode", f"a volume of numbers, got {data.dtype}")
    return data, px


def _check_volumes(source: SubtomogramSource, rows: np.ndarray) -> tuple[dict[Path, np.ndarray], int, dict[Path, float]]:
    """Open every file the rows need; check existence, indices and one box size. Returns the
    open files, the box and the header voxel sizes (files that set one)."""
    volumes: dict[Path, np.ndarray] = {}
    header_px: dict[Path, float] = {}
    star = source.path.is_file()
    box, first = None, None
    for r in rows:
        f, k = source.files[r], int(source.index[r])  # k -1: the whole file
        if f not in volumes:
            if not f.is_file():
                where = f"row {int(r)} (0-based) names {f}" if star else str(f)
                raise InputError(source.path, "rlnImageName" if star else "files", f"an existing MRC file; {where}, not found")
            data, px = _open_volumes(f)
            if box is None:
                box, first = data.shape[1], f
            elif data.shape[1] != box:
                raise InputError(f, "nx/ny/nz", f"subtomograms of one box size, {box}^3 as in {first}; this file's are {data.shape[1]}^3")
            volumes[f] = data
            if px is not None:
                header_px[f] = px
        n = volumes[f].shape[0]
        if k >= n:
            raise InputError(source.path, "rlnImageName", f"an index within the stack; row {int(r)} (0-based) names volume "
                                                          f"{k + 1} of {f}, which holds {n}")
        if k < 0 and n > 1:
            raise (InputError(source.path, "rlnImageName", f"one subtomogram per file, or k@stack; row {int(r)} names {f}, a stack of {n}")
                   if star else InputError(f, "nx/ny/nz", f"one subtomogram per file, got a stack of {n}"))
    return volumes, int(box), header_px


def _pixel_size(source: SubtomogramSource, rows: np.ndarray, header: dict[Path, float], given: float | None) -> float:
    """The subtomograms' pixel size: the MRC headers' (one value), else ``given``, else the STAR's."""
    if header:
        (f0, px), *rest = header.items()
        for f, other in rest:
            if abs(other - px) > PIXEL_TOLERANCE * px:
                raise InputError(f, "voxel_size", f"one pixel size for all subtomograms: {other:g} Å here, {px:g} Å in {f0}")
        if given is not None and abs(given - px) > PIXEL_TOLERANCE * px:
            raise InputError(f0, "voxel_size", f"a header voxel size matching the given pixel size {given:g} Å within 1%, header says {px:g} Å")
        return float(px)
    if given is not None:
        return float(given)
    star = source.image_pixel_size[rows]
    known = star[np.isfinite(star)]
    if len(known):
        if np.any(np.abs(known - known[0]) > PIXEL_TOLERANCE * known[0]):
            raise InputError(source.path, "rlnImagePixelSize", f"one pixel size for all subtomograms, got {sorted(set(known.tolist()))[:5]}")
        return float(known[0])
    raise InputError(source.path, "voxel_size", "a pixel size: the MRC headers set none; give one (--pixel-size, "
                                                "config data.pixel_size) or rlnImagePixelSize in the STAR file")


def _output_table(source: SubtomogramSource, rows: np.ndarray, box: int, pixel_size: float, padded: bool) -> pd.DataFrame:
    out = source.table.iloc[rows].copy()
    if source.coordinates_given:
        scale = source.coordinate_pixel_size[rows] / pixel_size
        scale = np.where(np.isfinite(scale), scale, 1.0)
        out[COORDS] = out[COORDS].to_numpy(float) * scale[:, None]
    else:
        out[COORDS] = float(box // 2)
    out["afmPixelSize"] = float(pixel_size)
    out["rlnOpticsGroup"] = 1
    out["afmEdge"] = int(padded)
    out.attrs = {}
    return out.reset_index(drop=True)


def _write_stack(path: Path, source: SubtomogramSource, rows: np.ndarray, volumes: dict[Path, np.ndarray], n_in: int,
                 px: float, out_px: float, opts: ExtractionOptions, resize: str, progress: bool) -> np.ndarray:
    """Resize, normalise and write every row's volume; returns the mask of rows with non-finite voxels."""
    box = opts.box
    stack = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(rows), box, box, box))
    mask = spherical_mask(box, opts.mask_radius).reshape(-1) if opts.mask_radius is not None else None
    inside = _pad_mask(n_in, box) if resize == "crop" and box > n_in else None
    chunk = max(1, CHUNK_BYTES // (4 * box**3))
    block = np.empty((chunk, box, box, box), dtype=np.float32)
    bad = np.zeros(len(rows), dtype=bool)
    bar = progress_bar(total=len(rows), desc="import", unit="subtomo", disable=not progress, leave=False)
    try:
        for lo in range(0, len(rows), chunk):
            hi = min(lo + chunk, len(rows))
            part = block[: hi - lo]
            for j, r in enumerate(rows[lo:hi]):
                vol = np.asarray(volumes[source.files[r]][max(int(source.index[r]), 0)], dtype=np.float32)
                if not np.isfinite(vol).all():
                    bad[lo + j] = True
                    part[j] = 0.0
                    continue
                part[j] = resize_box(vol, box, px, out_px) if resize == "scale" else _crop_or_pad(vol, box)
            flat = part.reshape(hi - lo, -1)
            valid = {j: inside for j in range(hi - lo)} if inside is not None else {}
            normalise_boxes(flat, valid, mask, opts)
            stack[lo:hi] = part
            bar.update(hi - lo)
        stack.flush()
    finally:
        bar.close()
        del stack
    return bad


def resize_box(volume: np.ndarray, box: int, voxel_size: float, new_voxel_size: float) -> np.ndarray:
    """A cubic volume resampled about its centre voxel ``N//2`` onto a ``box``^3 grid of ``new_voxel_size``
    (anti-aliased at the output Nyquist when the voxel grows)."""
    from affinitomo.density.filters import lowpass
    from affinitomo.density.resample import resample_centred

    if volume.shape[0] == box and abs(new_voxel_size - voxel_size) <= 1e-6 * voxel_size:
        return volume
    if new_voxel_size > voxel_size:
        volume = lowpass(volume, voxel_size, 2 * new_voxel_size)
    return resample_centred(volume, voxel_size, new_voxel_size, box)


def _crop_or_pad(volume: np.ndarray, box: int) -> np.ndarray:
    """The ``box``^3 region about the centre voxel ``N//2`` (zeros outside the volume)."""
    n = volume.shape[0]
    if n == box:
        return volume
    out = np.zeros((box,) * 3, dtype=np.float32)
    start = n // 2 - box // 2  # input index of output voxel 0
    lo, hi = max(start, 0), min(start + box, n)
    sl_in = slice(lo, hi)
    sl_out = slice(lo - start, hi - start)
    out[sl_out, sl_out, sl_out] = volume[sl_in, sl_in, sl_in]
    return out


def _pad_mask(n_in: int, box: int) -> np.ndarray:
    """Flat mask of the output voxels that a volume of ``n_in``^3 padded to ``box``^3 covers."""
    return _crop_or_pad(np.ones((n_in,) * 3, dtype=np.float32), box).reshape(-1) > 0
