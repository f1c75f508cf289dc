"""Template-matching picker: two asymmetric templates placed at known positions and rotations, plus noise."""

from __future__ import annotations

import argparse
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial import cKDTree

from affinitomo.errors import InputError
from affinitomo.geometry import angular_distance, euler_to_matrix, random_matrices, rotate_volume
from affinitomo.io.particles import ANGLES, read_particles
from affinitomo.pick import pick_tomograms
from affinitomo.pick.template import pick_tomogram_templates

VOXEL = 10.0
BOX = 16
XYZ = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
#: Gaussian blobs (z, y, x offsets from the box centre, amplitude): two chiral, distinct shapes.
SHAPES = {
    "alpha": [((0, 0, 0), 1.0), ((0, 0, 4), 1.0), ((0, 4, 0), 0.7), ((3, 0, -1), 0.5)],
    "beta": [((0, 0, -4), 0.8), ((0, 0, 0), 1.0), ((0, 0, 4), 0.8), ((2, 3, 4), 0.9)],
}


def blob_template(spec: list[tuple[tuple[int, int, int], float]], sigma: float = 1.1) -> np.ndarray:
    g = np.arange(BOX) - BOX // 2
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    vol = np.zeros((BOX,) * 3, np.float32)
    for (z, y, x), a in spec:
        vol += a * np.exp(-((zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    return vol


def write_mrc(path: Path, data: np.ndarray, voxel: float = VOXEL) -> None:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(data, np.float32))
        mrc.voxel_size = voxel


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small FFTs: one thread is faster than two sharing a busy machine (3 s against 13 s measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def template_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("templates")
    for name, spec in SHAPES.items():
        write_mrc(folder / f"{name}.mrc", blob_template(spec))
    return folder


def make_tomogram(path: Path, shape: tuple[int, int, int], n: int, noise: float, seed: int,
                  names: tuple[str, ...] = ("alpha", "beta")) -> pd.DataFrame:
    """Copies of the templates at random separated integer positions and random rotations; the truth."""
    rng = np.random.default_rng(seed)
    margin = BOX // 2 + 1
    centres: list[np.ndarray] = []
    while len(centres) < n:
        p = rng.integers(margin, np.array(shape) - margin)
        if all(np.abs(p - q).max() >= 13 for q in centres):
            centres.append(p)
    mats = random_matrices(n, rng)
    vol = rng.normal(0.0, noise, shape).astype(np.float32) if noise > 0 else np.zeros(shape, np.float32)
    labels = []
    for k, (c, a) in enumerate(zip(centres, mats)):
        name = names[k % len(names)]
        labels.append(name)
        lo = c - BOX // 2
        vol[lo[0] : lo[0] + BOX, lo[1] : lo[1] + BOX, lo[2] : lo[2] + BOX] += rotate_volume(blob_template(SHAPES[name]), a, order=3)
    write_mrc(path, vol)
    centres_a = np.array(centres)
    return pd.DataFrame({"z": centres_a[:, 0], "y": centres_a[:, 1], "x": centres_a[:, 2], "name": labels,
                         "matrix": list(mats)})


def matched(table: pd.DataFrame, truth: pd.DataFrame, tol: float = 2.0) -> tuple[float, float, np.ndarray]:
    """Precision, recall, and for each truth particle the row of its pick within ``tol`` (-1: none)."""
    picks = table[XYZ].to_numpy()[:, ::-1]
    true = truth[["z", "y", "x"]].to_numpy(float)
    d_pick, _ = cKDTree(true).query(picks)
    d_true, j = cKDTree(picks).query(true)
    return float(np.mean(d_pick <= tol)), float(np.mean(d_true <= tol)), np.where(d_true <= tol, j, -1)


@pytest.fixture(scope="module")
def noisy(tmp_path_factory, template_dir):
    folder = tmp_path_factory.mktemp("tomo")
    path = folder / "tomoT.mrc"
    truth = make_tomogram(path, (40, 80, 80), n=8, noise=0.25, seed=1)
    table = pick_tomogram_templates(path, template_dir, diameter_A=100, angular_step=45, resolution=30, max_count=24)
    return path, truth, table


def test_positions_and_templates_are_recovered(noisy):
    _, truth, table = noisy
    precision, recall, rows = matched(table, truth)
    assert recall >= 0.9 and precision >= 0.9, (precision, recall, len(table))
    hit = rows >= 0
    right = table["afmMatchClass"].to_numpy()[rows[hit]] == truth["name"].to_numpy()[hit]
    assert right.mean() >= 0.8
    assert set(table.columns) >= {"afmMatchClass", "afmMatchScore", "afmPickScore", *ANGLES, *XYZ}
    assert (table["afmClassName"] == "").all()  # not a label
    assert table["afmMatchScore"].between(-1, 1).all()
    assert np.all(np.diff(table["afmPickScore"].to_numpy()) <= 0)


def test_noiseless_angles_within_the_grid_step(tmp_path, template_dir):
    path = tmp_path / "clean.mrc"
    one = tmp_path / "one"
    one.mkdir()
    (one / "alpha.mrc").write_bytes((template_dir / "alpha.mrc").read_bytes())
    truth = make_tomogram(path, (24, 48, 48), n=2, noise=0.0, seed=3, names=("alpha",))
    step = 30.0
    table = pick_tomogram_templates(path, one, diameter_A=100, angular_step=step, resolution=20, threshold=2.0, max_count=2)
    precision, recall, rows = matched(table, truth, tol=1.0)
    assert recall == 1.0
    found = euler_to_matrix(*table[ANGLES].to_numpy()[rows].T)
    err = angular_distance(found, np.stack(truth["matrix"].to_numpy()))
    assert err.max() <= step, err


def test_slabs_give_the_same_picks_as_one_slab(tmp_path, template_dir):
    path = tmp_path / "tomoS.mrc"
    make_tomogram(path, (40, 48, 48), n=3, noise=0.25, seed=5)
    kwargs = dict(diameter_A=100, angular_step=60, resolution=30, threshold=3.0)
    whole = pick_tomogram_templates(path, template_dir, slab=1000, **kwargs)
    part = pick_tomogram_templates(path, template_dir, slab=8, batch=7, **kwargs)
    assert len(whole) == len(part)
    np.testing.assert_allclose(part[XYZ].to_numpy(), whole[XYZ].to_numpy(), atol=1e-3)
    np.testing.assert_allclose(part["afmMatchScore"], whole["afmMatchScore"], atol=1e-4)
    assert (part["afmMatchClass"] == whole["afmMatchClass"]).all()
    np.testing.assert_allclose(part[ANGLES].to_numpy(), whole[ANGLES].to_numpy(), atol=1e-3)


def test_wedge_option_runs_and_still_finds_particles(noisy, template_dir):
    path, truth, _ = noisy
    table = pick_tomogram_templates(path, template_dir, diameter_A=100, angular_step=60, resolution=30,
                                    wedge=(-60, 60), max_count=8, threshold=3.0)
    assert matched(table, truth)[1] >= 0.6


def test_ctf_weighted_templates_match_a_tomogram_with_a_ctf_better(tmp_path, template_dir):
    """A tomogram carrying a CTF whose first zero (5 µm: 1/32 Å) lies inside the 20 Å band: templates
    through the same CTF correlate better with its particles than plain ones, and find them all.
    (On a 30-degree grid the weighted 'alpha' beat a 'beta' 4 voxels off: too coarse a grid.)"""
    from affinitomo.density.ctf import CtfParameters

    path = tmp_path / "tomoC.mrc"
    truth = make_tomogram(path, (40, 40, 40), n=4, noise=0.0, seed=7)
    ctf = CtfParameters(defocus_um=5.0)
    with mrcfile.open(path) as mrc:
        clean = mrc.data.astype(np.float64)
    spec = np.fft.rfftn(clean) * ctf.volume(40, VOXEL)
    noise = np.random.default_rng(8).normal(0.0, 0.1, clean.shape)
    write_mrc(path, np.fft.irfftn(spec, s=clean.shape) + noise)
    kwargs = dict(diameter_A=100, angular_step=20, resolution=20, max_count=4, threshold=2.0)
    found = {}
    for label, c in (("plain", None), ("ctf", ctf)):
        table = pick_tomogram_templates(path, template_dir, ctf=c, **kwargs)
        _, recall, rows = matched(table, truth)
        found[label] = (recall, table["afmMatchScore"].to_numpy()[rows[rows >= 0]].mean(), table["afmPickScore"].min())
    assert found["ctf"][0] == 1.0, found
    assert found["ctf"][1] > found["plain"][1] + 0.05, found  # measured: 0.66 against 0.58
    assert found["ctf"][2] > found["plain"][2], found  # and further above the background (z 17.7 against 14.2)
    with pytest.raises(InputError, match="defocus-um"):
        pick_tomogram_templates(path, template_dir, ctf=CtfParameters(defocus_um=-1.0), **kwargs)


# ----------------------------------------------------------------------------- CLI and bad input


def _cli(argv: list[str]) -> int:
    from affinitomo.cli import pick as verb

    parser = argparse.ArgumentParser()
    verb.add_arguments(parser)
    return verb.run(parser.parse_args(argv))


def test_cli_writes_a_star_with_match_columns(noisy, template_dir, tmp_path):
    path, truth, _ = noisy
    out = tmp_path / "picks.star"
    assert _cli(["--tomograms", str(path), "--diameter", "100", "--out", str(out), "--templates", str(template_dir),
                 "--angular-step", "60", "--resolution", "30", "--max-count", "8", "--no-progress"]) == 0
    table = read_particles(out)
    assert len(table) == 8 and set(table["afmMatchClass"]) <= {"alpha", "beta"}
    assert matched(table, truth)[0] >= 0.6  # a coarse 60-degree grid, for speed
    assert np.isfinite(table[ANGLES].to_numpy()).all() and table["afmMatchScore"].gt(0).all()


def test_bad_template_folders(noisy, tmp_path):
    path, _, _ = noisy
    empty = tmp_path / "empty_templates"
    empty.mkdir()
    for folder in (empty, tmp_path / "missing_templates"):
        with pytest.raises(InputError, match=folder.name):
            pick_tomograms([path], templates=folder, diameter_A=100, angular_step=60)


def test_zero_picks_names_the_tomogram(noisy, template_dir):
    path, _, _ = noisy
    with pytest.raises(InputError, match=r"tomoT\.mrc.*threshold.*best score"):
        pick_tomogram_templates(path, template_dir, diameter_A=100, angular_step=90, threshold=1000)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"angular_step": 0.0}, r"angular_step.*\(0, 180\]"),
        ({"angular_step": 200.0}, r"angular_step.*\(0, 180\]"),
        ({"resolution": -5.0}, r"resolution.*positive"),
        ({"wedge": (60.0, -60.0)}, r"wedge.*min < max"),
    ],
)
def test_bad_search_settings_are_input_errors(noisy, template_dir, options, message):
    path, _, _ = noisy
    kwargs = {"angular_step": 60.0, **options}
    with pytest.raises(InputError, match=message):
        pick_tomogram_templates(path, template_dir, diameter_A=100, **kwargs)


def test_template_options_without_templates_are_refused(noisy, tmp_path):
    path, _, _ = noisy
    with pytest.raises(InputError, match="--templates DIR"):
        _cli(["--tomograms", str(path), "--diameter", "100", "--out", str(tmp_path / "p.star"), "--angular-step", "10"])
    with pytest.raises(InputError, match="--defocus-um"):
        _cli(["--tomograms", str(path), "--diameter", "100", "--out", str(tmp_path / "p.star"), "--defocus-um", "3"])
