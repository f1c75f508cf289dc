"""RELION Euler convention and volume rotation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from affinitomo.geometry import (
    angular_distance,
    euler_to_matrix,
    matrix_to_euler,
    random_matrices,
    rotate_volume,
)


def asymmetric_template(n: int = 24) -> np.ndarray:
    """Three blobs of different sizes on the +x, +y and +z axes (no symmetry)."""
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    vol = np.zeros((n, n, n), np.float32)
    for (px, py, pz), s in [((6, 0, 0), 1.5), ((0, 4, 0), 2.0), ((0, 0, 8), 1.2)]:
        vol += np.exp(-((x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2) / (2 * s**2))
    return vol


def peak_xyz(vol: np.ndarray, mask_radius: float, near: np.ndarray) -> np.ndarray:
    """Centroid (x, y, z relative to centre) of the density near a point."""
    n = vol.shape[0]
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    pts = np.stack([x, y, z], -1).astype(float)
    sel = np.linalg.norm(pts - near, axis=-1) < mask_radius
    w = vol[sel]
    return (pts[sel] * w[:, None]).sum(0) / w.sum()


def test_matches_eulerangles_relion_convention():
    eulerangles = pytest.importorskip("eulerangles")
    rng = np.random.default_rng(1)
    angles = rng.uniform([-180, 0, -180], [180, 180, 180], size=(20, 3))
    ours = euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    theirs = eulerangles.euler2matrix(angles, axes="zyz", intrinsic=True, right_handed_rotation=True)
    # The eulerangles package's 'relion' convention gives A^T (DESIGN.md).
    np.testing.assert_allclose(ours, np.transpose(theirs, (0, 2, 1)), atol=1e-10)


def test_euler_roundtrip():
    mats = random_matrices(50, 3)
    back = euler_to_matrix(*matrix_to_euler(mats).T)
    assert angular_distance(mats, back).max() < 1e-4  # degrees; arccos near 1 limits precision


def test_known_rotation_rot90_about_z():
    a = euler_to_matrix(90.0, 0.0, 0.0)
    # RELION rot=90: the reference x axis goes to -y? Check against scipy's definition.
    expected = Rotation.from_euler("ZYZ", [90, 0, 0], degrees=True).inv().as_matrix()
    np.testing.assert_allclose(a, expected)
    np.testing.assert_allclose(a @ [1, 0, 0], [0, -1, 0], atol=1e-12)


def test_rotate_volume_places_reference_point_at_a_p():
    vol = asymmetric_template()
    a = euler_to_matrix(30.0, 60.0, -100.0)
    out = rotate_volume(vol, a, order=3)
    for p in ([6, 0, 0], [0, 4, 0], [0, 0, 8]):
        moved = a @ np.array(p, float)
        assert np.linalg.norm(peak_xyz(out, 3.0, moved) - moved) < 0.5


def test_rotate_then_unrotate_roundtrip_via_written_angles():
    vol = asymmetric_template()
    a = random_matrices(1, 7)[0]
    rot, tilt, psi = matrix_to_euler(a)
    particle = rotate_volume(vol, a, order=3)
    back = rotate_volume(particle, euler_to_matrix(rot, tilt, psi).T, order=3)
    core = np.s_[4:-4, 4:-4, 4:-4]
    corr = np.corrcoef(back[core].ravel(), vol[core].ravel())[0, 1]
    assert corr > 0.97
