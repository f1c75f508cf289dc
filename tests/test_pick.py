"""Reference-free picker: synthetic tomograms of soft balls at known positions plus noise."""

from __future__ import annotations

import argparse
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from affinitomo.errors import InputError
from affinitomo.io.particles import read_particles
from affinitomo.pick import pick_tomogram, pick_tomograms
from affinitomo.pick.bandpass import DogFilter
from affinitomo.pick.nms import greedy_nms
from affinitomo.pick.peaks import local_maxima, max_filter
from affinitomo.pick.slabs import iter_slabs

VOXEL = 10.0
XYZ = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]


def make_tomogram(
    path: Path,
    *,
    shape: tuple[int, int, int] = (64, 160, 160),
    n: int = 40,
    radius: float = 5.0,
    amplitude: float = 0.6,
    noise: float = 1.0,
    dark: bool = False,
    seed: int = 0,
    voxel_size: float | None = VOXEL,
) -> np.ndarray:
    """Write soft balls (radius in voxels) at random separated positions plus Gaussian noise; return [z, y, x] centres."""
    rng = np.random.default_rng(seed)
    margin = int(np.ceil(radius)) + 1
    centres: list[np.ndarray] = []
    while len(centres) < n:
        p = rng.uniform(margin, np.array(shape) - 1 - margin)
        if all(np.linalg.norm(p - q) >= 2.4 * radius for q in centres):
            centres.append(p)
    vol = rng.normal(0.0, noise, shape).astype(np.float32)
    half = int(np.ceil(radius + 4))
    sign = -1.0 if dark else 1.0
    for c in centres:
        lo = np.maximum(np.floor(c).astype(int) - half, 0)
        hi = np.minimum(np.floor(c).astype(int) + half + 1, shape)
        zz, yy, xx = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
        d = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
        vol[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] += sign * amplitude / (1 + np.exp((d - radius) / 0.7))
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(vol)
        if voxel_size is not None:
            mrc.voxel_size = voxel_size
    return np.array(centres)


def precision_recall(table: pd.DataFrame, centres_zyx: np.ndarray, tolerance: float) -> tuple[float, float]:
    picks = table[XYZ].to_numpy()[:, ::-1]
    d_pick, _ = cKDTree(centres_zyx).query(picks)
    d_true, _ = cKDTree(picks).query(centres_zyx)
    return float(np.mean(d_pick <= tolerance)), float(np.mean(d_true <= tolerance))


@pytest.fixture
def tomo(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "tomoA.mrc"
    return path, make_tomogram(path)


# ----------------------------------------------------------------------------- accuracy


def test_picks_bright_blobs_within_half_a_radius(tomo):
    path, centres = tomo
    table = pick_tomogram(path, diameter_A=100)
    precision, recall = precision_recall(table, centres, tolerance=2.5)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall, len(table))
    assert list(table.columns[:4]) == ["rlnTomoName", *XYZ]
    assert (table["rlnTomoName"] == "tomoA").all()
    assert (table["afmClassName"] == "").all()
    assert (table["afmPixelSize"] == VOXEL).all()
    assert table["afmParticleId"].tolist() == list(range(len(table)))
    assert np.all(np.diff(table["afmPickScore"]) <= 0)


def test_dark_polarity(tmp_path):
    path = tmp_path / "dark.mrc"
    centres = make_tomogram(path, dark=True, seed=3)
    precision, recall = precision_recall(pick_tomogram(path, diameter_A=100, polarity="dark"), centres, 2.5)
    assert precision >= 0.9 and recall >= 0.9
    wrong = pick_tomogram(path, diameter_A=100, polarity="bright", threshold=3.0)
    assert precision_recall(wrong, centres, 2.5)[1] < 0.2


def test_binned_picking_of_larger_particles(tmp_path):
    path = tmp_path / "big.mrc"
    centres = make_tomogram(path, shape=(96, 192, 192), n=25, radius=10.0, amplitude=0.3, seed=5)
    table = pick_tomogram(path, diameter_A=200)  # 20 px: automatic bin 3
    precision, recall = precision_recall(table, centres, tolerance=5.0)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)


def test_pixel_size_argument_overrides_header(tmp_path):
    path = tmp_path / "nohdr.mrc"
    centres = make_tomogram(path, voxel_size=None, seed=2)
    with pytest.raises(InputError, match="nohdr.mrc.*pixel size"):
        pick_tomogram(path, diameter_A=100)
    table = pick_tomogram(path, diameter_A=50, pixel_size=5.0)
    assert (table["afmPixelSize"] == 5.0).all()
    assert precision_recall(table, centres, 2.5)[1] >= 0.9


# ----------------------------------------------------------------------------- slabs and limits


def test_picks_do_not_depend_on_slab_size(tomo):
    path, _ = tomo
    whole = pick_tomogram(path, diameter_A=100, slab=1000)
    for slab in (5, 16, 40):
        part = pick_tomogram(path, diameter_A=100, slab=slab)
        assert len(part) == len(whole), slab
        np.testing.assert_allclose(part[XYZ].to_numpy(), whole[XYZ].to_numpy(), atol=1e-3)
        np.testing.assert_allclose(part["afmPickScore"], whole["afmPickScore"], rtol=1e-4)


def test_slabs_hold_only_core_and_halo(tmp_path):
    volume = np.arange(40 * 6 * 6, dtype=np.float32).reshape(40, 6, 6)
    seen = []
    for slab in iter_slabs(volume, bin=2, core=3, halo=2):
        assert slab.data.shape[0] <= 3 + 2 * 2
        np.testing.assert_array_equal(slab.data[slab.core][:, 0, 0], volume[::2][slab.core_start : slab.core_stop, 0:2, 0:2].mean(axis=(1, 2)) + 0.5 * 36)
        seen.extend(range(slab.core_start, slab.core_stop))
    assert seen == list(range(20))


def test_min_distance_max_count_and_edge_margin(tomo):
    path, _ = tomo
    table = pick_tomogram(path, diameter_A=100, threshold=2.0, min_distance=14, edge_margin=12)
    xyz = table[XYZ].to_numpy()
    d, _ = cKDTree(xyz).query(xyz, k=2)
    assert d[:, 1].min() >= 14
    assert xyz.min() >= 12 and np.all(xyz <= np.array([160, 160, 64]) - 1 - 12)
    top = pick_tomogram(path, diameter_A=100, threshold=2.0, min_distance=14, edge_margin=12, max_count=7)
    pd.testing.assert_frame_equal(top, table.iloc[:7])


def test_several_tomograms_unique_ids(tmp_path):
    paths = [tmp_path / "a.mrc", tmp_path / "b.mrc"]
    for i, p in enumerate(paths):
        make_tomogram(p, seed=10 + i, n=15)
    table = pick_tomograms(paths, diameter_A=100)
    assert set(table["rlnTomoName"]) == {"a", "b"}
    assert table["afmParticleId"].is_unique
    other = tmp_path / "sub"
    other.mkdir()
    make_tomogram(other / "a.mrc", seed=1, n=5)
    with pytest.raises(InputError, match="distinct file stems"):
        pick_tomograms([paths[0], other / "a.mrc"], diameter_A=100)


# ----------------------------------------------------------------------------- bad input


def test_zero_picks_names_the_tomogram(tomo):
    path, _ = tomo
    with pytest.raises(InputError, match=r"tomoA\.mrc.*threshold.*best score"):
        pick_tomogram(path, diameter_A=100, threshold=1000)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"diameter_A": -5}, "diameter"),
        ({"diameter_A": 20}, "diameter"),  # 2 pixels
        ({"diameter_A": 100, "polarity": "grey"}, "polarity"),
        ({"diameter_A": 100, "max_count": 0}, "max_count"),
        ({"diameter_A": 100, "slab": 0}, "slab"),
        ({"diameter_A": 100, "edge_margin": -1}, "edge_margin"),
    ],
)
def test_bad_arguments(tomo, kwargs, field):
    path, _ = tomo
    with pytest.raises(InputError) as err:
        pick_tomogram(path, **kwargs)
    assert err.value.field == field and err.value.path == str(path)


def test_constant_and_missing_tomograms(tmp_path):
    flat = tmp_path / "flat.mrc"
    with mrcfile.new(flat) as mrc:
        mrc.set_data(np.ones((32, 48, 48), np.float32))
        mrc.voxel_size = VOXEL
    with pytest.raises(InputError, match="flat.mrc.*contrast"):
        pick_tomogram(flat, diameter_A=80)
    with pytest.raises(InputError, match="not found"):
        pick_tomogram(tmp_path / "missing.mrc", diameter_A=80)


# ----------------------------------------------------------------------------- CLI


def _cli(argv: list[str]) -> int:
    from affinitomo.cli import pick as verb

    parser = argparse.ArgumentParser()
    verb.add_arguments(parser)
    args = parser.parse_args(argv)
    return verb.run(args)


def test_cli_writes_a_readable_star(tomo, tmp_path):
    path, centres = tomo
    out = tmp_path / "out" / "picks.star"
    assert _cli(["--tomograms", str(path), "--diameter", "100", "--out", str(out), "--max-count", "30", "--no-progress"]) == 0
    table = read_particles(out)
    assert len(table) == 30
    assert (table["afmPixelSize"] == VOXEL).all() and "afmPickScore" in table
    assert precision_recall(table, centres, 2.5)[0] >= 0.9


def test_cli_zero_picks_leaves_no_output(tomo, tmp_path):
    path, _ = tomo
    out = tmp_path / "picks.star"
    with pytest.raises(InputError, match="tomoA"):
        _cli(["--tomograms", str(path), "--diameter", "100", "--out", str(out), "--threshold", "1000"])
    assert list(tmp_path.glob("*.star")) == [] and not list(tmp_path.glob(".picks*"))


# ----------------------------------------------------------------------------- building blocks


def test_dog_matches_scipy_gaussians_and_peaks_at_ball_centre():
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(40, 44, 48)).astype(np.float32)
    dog = DogFilter.for_radius(4.0)
    ours = dog.apply(vol, z_pad=(dog.reach, dog.reach))
    ref = ndi.gaussian_filter(vol, dog.sigma1, mode="reflect") - ndi.gaussian_filter(vol, dog.sigma2, mode="reflect")
    np.testing.assert_allclose(ours, ref, atol=1e-3 * np.abs(ref).max())
    zz, yy, xx = np.indices((64, 64, 64))
    ball = ((zz - 32) ** 2 + (yy - 32) ** 2 + (xx - 32) ** 2 <= 36).astype(np.float32)
    best = {}
    for r in (3.0, 6.0, 10.0):
        f = DogFilter.for_radius(r)
        resp = f.apply(ball)
        if r >= 6:  # a smaller filter finds the rim instead
            assert np.unravel_index(resp.argmax(), resp.shape) == (32, 32, 32)
        best[r] = resp[32, 32, 32] / (f.sigma2**2 - f.sigma1**2)  # scale-normalised
    assert max(best, key=best.get) == 6.0


def test_max_filter_and_local_maxima_match_scipy():
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(12, 15, 17)).astype(np.float32)
    for m in (1, 2, 3):
        np.testing.assert_array_equal(max_filter(vol, m), ndi.maximum_filter(vol, size=2 * m + 1, mode="nearest"))
    idx = local_maxima(vol, slice(3, 9), 1)
    expected = np.argwhere((vol == ndi.maximum_filter(vol, size=3, mode="nearest")) & (vol > 0))
    expected = expected[(expected[:, 0] >= 3) & (expected[:, 0] < 9)]
    np.testing.assert_array_equal(idx, expected)


def test_greedy_nms():
    points = np.array([[0, 0, 0], [3, 0, 0], [6, 0, 0], [20, 0, 0]], float)
    scores = np.array([1.0, 2.0, 0.5, 0.1])
    np.testing.assert_array_equal(greedy_nms(points, scores, 4.0), [1, 3])  # 0 and 2 lie within 4 of 1
    np.testing.assert_array_equal(greedy_nms(points, scores, 2.0), [1, 0, 2, 3])
    np.testing.assert_array_equal(greedy_nms(points, scores, 4.0, max_count=1), [1])
    assert len(greedy_nms(np.zeros((0, 3)), np.zeros(0), 4.0)) == 0


def test_pick_metrics_match_one_to_one():
    from affinitomo.pick.evaluate import pick_metrics

    truth = pd.DataFrame({"rlnTomoName": "t", "rlnCoordinateX": [10.0, 30.0, 50.0], "rlnCoordinateY": 0.0,
                          "rlnCoordinateZ": 0.0, "afmClassName": ["a", "a", "b"]})
    picks = pd.DataFrame({"rlnTomoName": ["t", "t", "t", "u"], "rlnCoordinateX": [11.0, 10.5, 47.0, 30.0],
                          "rlnCoordinateY": 0.0, "rlnCoordinateZ": 0.0})
    m = pick_metrics(picks, truth, {"a": 2.0, "b": 4.0})
    assert m["precision"] == 0.5 and m["recall"] == pytest.approx(2 / 3)  # duplicate and other-tomogram picks miss
    assert m["recall_per_class"] == {"a": 0.5, "b": 1.0}
    assert m["median_error_px"] == pytest.approx(1.75)
