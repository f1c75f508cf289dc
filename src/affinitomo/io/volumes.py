"""Reading and writing volumes: MRC (mrcfile), TIFF (tifffile), copick tomograms (OME-Zarr).

Arrays are indexed ``[z, y, x]``; voxel sizes are in Å. A copick tomogram is named by a
tomogram reference file (``<run>.copick``, :mod:`affinitomo.io.copick_project`) and opened as
the zarr array of its OME-Zarr's level ``"0"``, which reads chunks only as it is sliced.

Voxel size: MRC files carry it in the header; TIFF files in ImageJ metadata (the
``XResolution`` tag, pixels per ``unit``, or else the ``spacing`` entry; units nm, µm,
Å, pm). An explicit ``voxel_size`` argument wins over the file (headers are often
wrong: 1.0, or the unbinned size), but a difference of more than 1% is logged as a
warning naming the file, never applied silently.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mrcfile
import numpy as np

from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path

MRC_SUFFIXES = {".mrc", ".mrcs", ".map", ".rec", ".st", ".ali"}
TIFF_SUFFIXES = {".tif", ".tiff"}
#: Tomogram references into a copick project (affinitomo.io.copick_project.REFERENCE_SUFFIX).
COPICK_SUFFIXES = {".copick"}
SUPPORTED_MRC_MODES = {0, 1, 2, 6, 12}
#: Bytes per voxel of the MRC modes read.
_MODE_BYTES = {0: 1, 1: 2, 2: 4, 6: 2, 12: 2}
#: Relative difference above which a given voxel size and the file's are said to differ.
VOXEL_SIZE_TOLERANCE = 0.01
#: Length units of ImageJ metadata, in Å.
_UNITS_A = {"nm": 10.0, "nanometer": 10.0, "nanometre": 10.0, "um": 1e4, "\u00b5m": 1e4, "\u03bcm": 1e4,
            "micron": 1e4, "microns": 1e4, "micrometer": 1e4, "a": 1.0, "\u00e5": 1.0, "angstrom": 1.0,
            "angstroms": 1.0, "pm": 0.01, "mm": 1e7}

log = logging.getLogger(__name__)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise InputError(path, None, "file not found")
    suffixes = MRC_SUFFIXES | TIFF_SUFFIXES | COPICK_SUFFIXES
    if path.suffix.lower() not in suffixes:
        raise InputError(path, "suffix", f"a volume file ({', '.join(sorted(suffixes))})")


def tiff_voxel_size(path: str | Path) -> float | None:
    """Voxel size (Å) from a TIFF's ImageJ metadata, or ``None`` when it sets none.

    The x resolution tag (pixels per unit) gives the in-plane size; the ImageJ
    ``spacing`` (z step) is used when that tag is absent or 1. ``unit`` must be a
    length (nm, µm, Å, pm, mm); ``pixel`` or a missing unit give ``None``.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata or {}
        unit = str(meta.get("unit", "")).strip().lower().replace("\\u00b5", "\u00b5")  # ImageJ escapes µ
        scale = _UNITS_A.get(unit)
        if scale is None:
            return None
        size = None
        tag = tif.pages[0].tags.get("XResolution")
        if tag is not None:
            num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
            if num > 0 and den > 0 and num != den:
                size = den / num
        if size is None and meta.get("spacing"):
            size = float(meta["spacing"])
    if size is None or not np.isfinite(size) or size <= 0:
        return None
    return float(size * scale)


def _choose_voxel_size(path: Path, from_file: float | None, given: float | None) -> float | None:
    """The given voxel size wins; warn when the file says something else (> 1%)."""
    if given is None:
        return from_file
    if from_file is not None and abs(from_file - given) > VOXEL_SIZE_TOLERANCE * from_file:
        log.warning("%s: the given voxel size %g Å differs from the file's %g Å; using %g Å", path, given, from_file, given)
    return float(given)


def open_volume(path: str | Path, voxel_size: float | None = None) -> tuple[np.ndarray, float | None]:
    """Open a volume without reading it into memory where the format allows.

    MRC files are memory-mapped (``mrcfile.mmap``); TIFF files are memory-mapped
    when uncompressed and contiguous, otherwise read; a copick tomogram reference gives a
    zarr array (sliced lazily, voxel size = the copick voxel spacing). Returns the array
    (``[z, y, x]``, read-only view) and the voxel size in Å: ``voxel_size`` when
    given (a warning is logged when the file's differs by more than 1%), else the
    MRC header's or the TIFF's ImageJ metadata's, else ``None``. A file that is not a
    readable volume is an InputError naming it, and so is an MRC file whose header
    size (nx, ny, nz) does not account for its data, which would be read scrambled.
    """
    path = Path(path)
    _check_exists(path)
    if path.suffix.lower() in COPICK_SUFFIXES:
        from affinitomo.io.copick_project import open_tomogram_reference

        data, from_file = open_tomogram_reference(path)
    elif path.suffix.lower() in TIFF_SUFFIXES:
        data, from_file = _open_tiff(path)
    else:
        data, from_file = open_mrc(path)
    if data.ndim != 3 or min(data.shape) < 1:
        raise InputError(path, "shape", f"a 3D volume, got shape {data.shape}")
    if data.dtype.kind not in "fiu":
        raise InputError(path, "dtype", f"a volume of numbers, got {data.dtype}")
    return data, _choose_voxel_size(path, from_file, voxel_size)


def _open_tiff(path: Path) -> tuple[np.ndarray, float | None]:
    import tifffile

    try:
        try:
            data = tifffile.memmap(path, mode="r")
        except (ValueError, TypeError):  # compressed or not contiguous: read it
            data = tifffile.imread(path)
        size = tiff_voxel_size(path)
    except Exception as exc:  # noqa: BLE001 - whatever a corrupt TIFF raises is bad input
        raise InputError(path, None, f"a readable TIFF volume ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, np.ndarray):
        raise InputError(path, None, "a readable TIFF volume")
    return data, size


def open_mrc(path: Path) -> tuple[np.ndarray, float | None]:
    try:
        with mrcfile.open(path, mode="r", permissive=False, header_only=True) as mrc:
            h = mrc.header
            mode, shape, extended = int(h.mode), (int(h.nx), int(h.ny), int(h.nz)), int(h.nsymbt)
    except Exception as exc:  # noqa: BLE001 - whatever a corrupt header raises is bad input
        raise InputError(path, "header", f"a valid MRC file ({type(exc).__name__}: {exc})") from None
    if mode not in SUPPORTED_MRC_MODES:
        raise InputError(path, "mode", f"an MRC mode in {sorted(SUPPORTED_MRC_MODES)}, got {mode}")
    # The header's size must account for the data bytes after the 1024-byte header and the
    # extended header: otherwise the voxels would be read scrambled (or past the end).
    data_bytes = path.stat().st_size - 1024 - extended
    expected = int(np.prod(shape)) * _MODE_BYTES[mode]
    if min(shape) < 1 or extended < 0 or expected != data_bytes:
        raise InputError(path, "nx/ny/nz", f"a header size matching the data: nx, ny, nz = {shape} of mode {mode} "
                                           f"({_MODE_BYTES[mode]} bytes per voxel) make {expected} bytes, but "
                                           f"the file holds {data_bytes} bytes after its headers; the volume "
                                           f"would be read scrambled (fix the header, or write the file again)")
    try:
        mrc = mrcfile.mmap(path, mode="r", permissive=False)
        data = mrc.data
        vs = float(mrc.voxel_size.x)
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, "header", f"a valid MRC file ({type(exc).__name__}: {exc})") from None
    if data is None:
        raise InputError(path, "data", "a 3D volume")
    if data.ndim == 2:  # nz = 1
        data = data[None]
    return data, (vs if np.isfinite(vs) and vs > 0 else None)


def read_volume(path: str | Path, voxel_size: float | None = None) -> tuple[np.ndarray, float | None]:
    """Read a whole volume as float32 ``[z, y, x]`` and its voxel size in Å."""
    data, vs = open_volume(path, voxel_size)
    return np.asarray(data, dtype=np.float32).copy(), vs


def write_volume(path: str | Path, data: np.ndarray, voxel_size: float | None) -> Path:
    """Write a float32 MRC atomically (temporary file, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
            if voxel_size is not None:
                mrc.voxel_size = float(voxel_size)
    return path
