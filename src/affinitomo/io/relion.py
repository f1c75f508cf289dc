"""RELION's particle frame: subtomogram orientations and origin shifts, folded into the tomogram frame.

RELION 5 cuts each subtomogram rotated by ``rlnTomoSubtomogramRot/Tilt/Psi`` and refines
``rlnAngleRot/Tilt/Psi`` relative to that box. Its particle matrix is the product
``A = A_subtomogram @ A_angle`` (``ParticleSet::getMatrix3x3`` in RELION's
``src/jaz/tomography/particle_set.cpp``), where each factor is RELION's ``Euler_angles2matrix``
of its ZYZ triplet: :func:`affinitomo.geometry.euler_to_matrix` gives that same matrix.

Origin shifts ``rlnOriginX/Y/ZAngst`` (Å) or RELION 3's ``rlnOriginX/Y/Z`` (pixels) are
subtracted from the coordinate, rotated by the subtomogram matrix
(``ParticleSet::getPosition``): ``centre = coordinate - A_subtomogram @ origin / pixel_size``.
Without subtomogram angles ``A_subtomogram`` is the identity and this is RELION 4's
``coordinate - origin / pixel_size``.

The canonical table holds the result: the particle centre in ``rlnCoordinateX/Y/Z``, the full
pose in ``rlnAngle*``, and zero origins and subtomogram angles (the columns are kept), so that
RELION, Warp or copick never apply a shift or a rotation a second time.
"""

from __future__ import annotations

import warnings

import numpy as np

from affinitomo.geometry import euler_to_matrix, matrix_to_euler

SUBTOMO_ANGLES = ["rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi"]
ORIGINS_ANGST = ["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]
ORIGINS_PIXEL = ["rlnOriginX", "rlnOriginY", "rlnOriginZ"]


def compose_orientations(subtomo: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Pose in the tomogram of particles refined in rotated subtomograms, as RELION ZYZ degrees (n, 3).

    ``subtomo`` and ``angles`` are (n, 3) (rot, tilt, psi) in degrees: ``A_subtomogram @ A_angle``.
    """
    matrices = euler_to_matrix(*np.asarray(subtomo, float).T) @ euler_to_matrix(*np.asarray(angles, float).T)
    with warnings.catch_warnings():  # tilt 0 or 180 (gimbal lock): scipy sets psi to 0, the pose is the same
        warnings.filterwarnings("ignore", message="Gimbal lock detected")
        return matrix_to_euler(matrices)


def origin_shift(origins: np.ndarray, subtomo: np.ndarray | None) -> np.ndarray:
    """Origins (n, 3), x y z, in the subtomogram frame -> the shift in the tomogram frame (same units).

    ``subtomo`` are the subtomogram angles (n, 3) in degrees, or None for unrotated boxes.
    """
    origins = np.asarray(origins, float)
    if subtomo is None:
        return origins
    return np.einsum("nij,nj->ni", euler_to_matrix(*np.asarray(subtomo, float).T), origins)
