"""Demo pseudo-proteins: sizes, positivity, symmetry claims, the deliberately similar pairs."""

from __future__ import annotations

import numpy as np
import pytest

from affinitomo.geometry import euler_to_matrix, rotate_volume
from affinitomo.simulate.phantoms import DEFAULT_HELD_OUT, bounding_radius, demo_phantoms, render_phantom
from affinitomo.simulate.templates import resample

PHANTOMS = {p.name: p for p in demo_phantoms()}
VOLS = {name: render_phantom(p, 32, 10.0) for name, p in PHANTOMS.items()}


def cc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_at_least_eight_classes_with_unique_names_and_a_held_out_default():
    assert len(PHANTOMS) >= 8
    assert len(set(PHANTOMS)) == len(demo_phantoms())
    assert DEFAULT_HELD_OUT in PHANTOMS


@pytest.mark.parametrize("name", sorted(PHANTOMS))
def test_density_positive_smooth_centred_and_realistic_size(name):
    vol = VOLS[name]
    assert vol.dtype == np.float32 and vol.shape == (32, 32, 32)
    assert vol.min() >= 0 and 0.6 <= vol.max() <= 1.0
    # nothing reaches the box faces, so any rotation keeps the whole protein in the box
    faces = [vol[0], vol[-1], vol[:, 0], vol[:, -1], vol[:, :, 0], vol[:, :, -1]]
    assert max(float(f.max()) for f in faces) < 1e-3
    # diameter 5-25 nm (bounding radius adds 1 voxel and the soft edge)
    diameter_nm = 2 * (bounding_radius(vol) - 1.0)
    assert 5.0 <= diameter_nm <= 26.0, diameter_nm
    # centre of mass on the box centre N//2 (the particle coordinate)
    z, y, x = np.mgrid[:32, :32, :32]
    com = np.array([(c * vol).sum() / vol.sum() for c in (z, y, x)])
    np.testing.assert_allclose(com, 16.0, atol=0.6)
    # smooth: no voxel-to-voxel jumps larger than half the peak
    assert np.abs(np.diff(vol, axis=2)).max() < 0.5


def _self_similarity(vol: np.ndarray, matrix: np.ndarray) -> float:
    return cc(vol, rotate_volume(vol, matrix))


def test_symmetric_shapes_match_themselves_under_their_symmetry():
    assert _self_similarity(VOLS["ring_c6"], euler_to_matrix(60.0, 0.0, 0.0)) > 0.97
    assert _self_similarity(VOLS["ring_c7"], euler_to_matrix(360.0 / 7, 0.0, 0.0)) > 0.97
    assert _self_similarity(VOLS["tripod"], euler_to_matrix(120.0, 0.0, 0.0)) > 0.97
    assert _self_similarity(VOLS["d4_stack"], euler_to_matrix(0.0, 180.0, 0.0)) > 0.97  # 2-fold about y


def test_asymmetric_shapes_have_no_rotational_symmetry():
    asym = [n for n, p in PHANTOMS.items() if "asymmetric" in p.tags]
    assert len(asym) >= 2
    rots = [euler_to_matrix(a, b, c) for a, b, c in [(180, 0, 0), (0, 180, 0), (90, 180, 0), (90, 0, 0), (0, 90, 0), (120, 90, 30)]]
    for name in asym:
        best = max(_self_similarity(VOLS[name], r) for r in rots)
        assert best < 0.8, (name, best)


def test_deliberately_similar_pairs_are_closest():
    names = sorted(VOLS)
    for a, b in [("ring_c6", "ring_c7"), ("l_short", "l_long")]:
        others = [cc(VOLS[a], VOLS[n]) for n in names if n not in (a, b)]
        assert cc(VOLS[a], VOLS[b]) > 0.5
        assert cc(VOLS[a], VOLS[b]) > max(others)


def test_rendering_is_consistent_across_voxel_sizes():
    fine = render_phantom(PHANTOMS["l_short"], 64, 5.0)
    coarse = resample(fine, 5.0, 10.0)
    assert coarse.shape == (32, 32, 32)
    assert cc(coarse, VOLS["l_short"]) > 0.98
