"""Reading and writing volumes: MRC (mrcfile) and TIFF (tifffile).

Arrays are indexed ``[z, y, x]``; voxel sizes are in Å.
"""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np

from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path

MRC_SUFFIXES = {".mrc", ".mrcs", ".map", ".rec", ".st", ".ali"}
TIFF_SUFFIXES = {".tif", ".tiff"}
SUPPORTED_MRC_MODES = {0, 1, 2, 6, 12}


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise InputError(path, None, "file not found")
    if path.suffix.lower() not in MRC_SUFFIXES | TIFF_SUFFIXES:
        raise InputError(path, "suffix", f"a volume file ({', '.join(sorted(MRC_SUFFIXES | TIFF_SUFFIXES))})")


def open_volume(path: str | Path, voxel_size: float | None = None) -> tuple[np.ndarray, float | None]:
    """Open a volume without reading it into memory where the format allows.

    MRC files are memory-mapped (``mrcfile.mmap``); TIFF files are memory-mapped
    when uncompressed and contiguous, otherwise read. Returns the array
    (``[z, y, x]``, read-only view) and the voxel size in Å (``None`` when the
    header does not set it and none was given).
    """
    path = Path(path)
    _check_exists(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        try:
            data = tifffile.memmap(path, mode="r")
        except (ValueError, TypeError):
            data = tifffile.imread(path)
        except Exception as exc:  # corrupt TIFF
            raise InputError(path, None, f"a readable TIFF volume ({exc})") from exc
        if data.ndim != 3:
            raise InputError(path, "shape", f"a 3D volume, got shape {data.shape}")
        return data, voxel_size
    try:
        mrc = mrcfile.mmap(path, mode="r", permissive=False)
    except Exception as exc:
        raise InputError(path, "header", f"a valid MRC file ({exc})") from exc
    mode = int(mrc.header.mode)
    if mode not in SUPPORTED_MRC_MODES:
        raise InputError(path, "mode", f"an MRC mode in {sorted(SUPPORTED_MRC_MODES)}, got {mode}")
    data = mrc.data
    if data is None or data.ndim not in (2, 3):
        raise InputError(path, "data", "a 3D volume")
    if data.ndim == 2:
        data = data[None]
    vs = float(mrc.voxel_size.x)
    return data, (voxel_size if voxel_size is not None else (vs if vs > 0 else None))


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
