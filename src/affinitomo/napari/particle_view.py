"""One particle up close: its subtomogram cropped from the tomogram, three orthogonal slices."""

from __future__ import annotations

import numpy as np

from affinitomo.geometry import rotate_volume


def crop_box(tomogram: np.ndarray, centre_xyz: tuple[float, float, float], box: int) -> np.ndarray:
    """A ``box``^3 float32 cube around a centre given as (x, y, z) pixels; zero outside the tomogram.

    The centre voxel is ``round(c)`` and sits at index ``box // 2`` (RELION's box centre).
    """
    centre_zyx = np.rint(np.asarray(centre_xyz, dtype=float)[::-1]).astype(int)
    start = centre_zyx - box // 2
    out = np.zeros((box, box, box), dtype=np.float32)
    src, dst = [], []
    for axis in range(3):
        lo, hi = start[axis], start[axis] + box
        clo, chi = max(lo, 0), min(hi, tomogram.shape[axis])
        if chi <= clo:
            return out
        src.append(slice(clo, chi))
        dst.append(slice(clo - lo, chi - lo))
    out[tuple(dst)] = np.asarray(tomogram[tuple(src)], dtype=np.float32)
    return out


def align_to_reference(subtomogram: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Undo a particle's pose A, so the subtomogram lines up with the class average."""
    return rotate_volume(subtomogram, np.asarray(matrix).T)


def orthogonal_slices(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central (z, y, x) slices through the box centre N//2: the XY, XZ and YZ planes."""
    cz, cy, cx = (n // 2 for n in volume.shape)
    return volume[cz], volume[:, cy, :], volume[:, :, cx]


def box_size_for(diameter_px: float, minimum: int = 16) -> int:
    """An even box of about twice the particle diameter (room to see the surroundings)."""
    box = int(np.ceil(2.0 * diameter_px))
    return max(minimum, box + (box % 2))
