"""Rotations in the RELION convention, and rotating volumes by them.

RELION's Euler angles (rot, tilt, psi) are ZYZ, in degrees. In scipy terms the
matrix that rotates the reference into the particle is::

    A = Rotation.from_euler("ZYZ", [rot, tilt, psi], degrees=True).inv().as_matrix()

acting on (x, y, z) column vectors: a point p of the reference frame appears at
``centre + A @ p`` in the tomogram. Arrays are ``[z, y, x]``, so axes are reversed
before A is applied to voxel indices.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import affine_transform
from scipy.spatial.transform import Rotation

_REV = np.eye(3)[::-1]  # swaps (x, y, z) <-> (z, y, x)


def euler_to_matrix(rot: np.ndarray | float, tilt: np.ndarray | float, psi: np.ndarray | float) -> np.ndarray:
    """RELION ZYZ angles (degrees) -> matrices A (..., 3, 3) rotating reference into particle."""
    angles = np.stack(np.broadcast_arrays(rot, tilt, psi), axis=-1).astype(float)
    flat = angles.reshape(-1, 3)
    mats = Rotation.from_euler("ZYZ", flat, degrees=True).inv().as_matrix()
    return mats.reshape(angles.shape[:-1] + (3, 3))


def matrix_to_euler(matrices: np.ndarray) -> np.ndarray:
    """Matrices A (..., 3, 3) -> RELION (rot, tilt, psi) in degrees, shape (..., 3)."""
    matrices = np.asarray(matrices, dtype=float)
    flat = matrices.reshape(-1, 3, 3)
    angles = Rotation.from_matrix(flat).inv().as_euler("ZYZ", degrees=True)
    return angles.reshape(matrices.shape[:-2] + (3,))


def random_matrices(n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """``n`` rotation matrices drawn uniformly from SO(3)."""
    rng = np.random.default_rng(rng)
    return Rotation.random(n, random_state=rng).as_matrix()


def rotate_volume(volume: np.ndarray, matrix: np.ndarray, order: int = 1, cval: float = 0.0) -> np.ndarray:
    """Rotate a ``[z, y, x]`` volume about its centre by A (acting on x, y, z).

    The output shows the input as a particle with pose A: output(c + A p) = input(c + p).
    """
    volume = np.asarray(volume, dtype=np.float32)
    m = _REV @ np.asarray(matrix, dtype=float).T @ _REV  # output index -> input index, in z, y, x
    centre = np.array(volume.shape, dtype=float) // 2  # box centre at N//2, as RELION
    offset = centre - m @ centre
    return affine_transform(volume, m, offset=offset, order=order, mode="constant", cval=cval, output=np.float32)


def nearest_rotation(m: np.ndarray) -> np.ndarray:
    """The rotation nearest each 3x3 matrix of m (..., 3, 3) in the Frobenius norm (SVD, determinant +1):
    of a weighted sum of rotations, their chordal mean."""
    u, _, vt = np.linalg.svd(np.asarray(m, dtype=float))
    u[..., :, -1] *= np.sign(np.linalg.det(u @ vt))[..., None]
    return u @ vt


def angular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between rotation matrices a and b (..., 3, 3)."""
    r = np.einsum("...ji,...jk->...ik", a, b)
    cos = (np.trace(r, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
