"""Rotation grids, FFT scores, pose search and the computed similarity matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from affinitomo.cli import main
from affinitomo.density.score import FourierScorer, rotate_volumes
from affinitomo.density.so3 import auto_angular_step, so3_grid
from affinitomo.errors import InputError
from affinitomo.geometry import angular_distance, random_matrices, rotate_volume
from affinitomo.io.similarity import read_similarity
from affinitomo.io.structures import load_structure, simulate_model
from affinitomo.io.volumes import write_volume
from affinitomo.search.pose import search_pose
from affinitomo.similarity import compute_similarity, scale_scores
from affinitomo.similarity.maps import to_common_grid

RES, VS = 20.0, 10.0


def blobs(n: int, centres: list[tuple[float, float, float]], weights: list[float], sigma: float = 1.2) -> np.ndarray:
    """An asymmetric test particle: Gaussian blobs at (x, y, z) offsets from the box centre N//2."""
    z, y, x = np.indices((n, n, n)) - n // 2
    vol = np.zeros((n, n, n), dtype=np.float32)
    for (cx, cy, cz), w in zip(centres, weights):
        vol += w * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * sigma**2))
    return vol


L_SHAPE = ([(0, 0, 0), (3, 0, 0), (0, 2.5, 0), (0, 0, 2)], [1.0, 0.8, 0.6, 0.4])
ROD = ([(-3, 0, 0), (-1, 0, 0), (1, 0, 0), (3, 0, 0)], [1.0, 1.0, 1.0, 1.0])
BALL = ([(0, 0, 0)], [3.0])


def test_so3_grid_near_uniform():
    grid = so3_grid(30.0)
    assert np.allclose(grid @ grid.transpose(0, 2, 1), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(grid), 1)
    probes = random_matrices(200, 0)
    nearest = np.array([angular_distance(grid, p[None]).min() for p in probes])
    assert nearest.max() < 30.0  # covering radius within one step
    assert auto_angular_step(20, 100) == pytest.approx(np.degrees(0.2))
    assert auto_angular_step(20, 1) == 30.0


def test_rotate_volumes_matches_geometry():
    vol = blobs(20, *L_SHAPE)
    mats = random_matrices(3, 1)
    out = rotate_volumes(torch.from_numpy(vol), torch.as_tensor(mats, dtype=torch.float32)).numpy()
    for k in range(3):
        assert np.abs(out[k] - rotate_volume(vol, mats[k])).max() < 1e-5


@pytest.mark.parametrize("score", ["ncc", "fsc"])
def test_scorer_finds_shift(score: str):
    vol = gaussian_filter(np.random.default_rng(0).normal(size=(16, 16, 16)), 1.5).astype(np.float32)
    moved = np.roll(vol, (2, -1, 3), axis=(0, 1, 2))
    scorer = FourierScorer(16, VS, RES, score, max_shift=5, device="cpu")
    best, shift = scorer.correlate(scorer.spectra(torch.from_numpy(moved)[None]), scorer.spectra(torch.from_numpy(vol)[None]))
    assert best.item() == pytest.approx(1.0, abs=1e-4)
    assert shift[0, 0].tolist() == [2, -1, 3]  # the moving map shifted by +t matches the reference


@pytest.mark.parametrize("score", ["ncc", "fsc"])
def test_search_recovers_rotation_and_shift(score: str):
    vol = blobs(20, *L_SHAPE)
    pose = random_matrices(1, 7)[0]
    target = np.roll(rotate_volume(vol, pose), 1, axis=2)
    result = search_pose(target, vol, voxel_size=VS, resolution=RES, score=score, angular_step=25, device="cpu")
    assert result.scores[0] > 0.95
    assert angular_distance(result.matrices[0], pose) < 8
    assert result.shifts[0].tolist() == [0, 0, 1]


def test_scale_scores():
    raw = np.array([[1.0, 0.9, 0.5], [0.9, 1.0, 0.7], [0.5, 0.7, 1.0]])
    out = scale_scores(raw)
    assert out[0, 2] == -1 and out[0, 1] == pytest.approx(0.6) and np.allclose(np.diag(out), 1)
    assert np.array_equal(scale_scores(raw, "none"), raw)


def _write_maps(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for name, shape, n, vs in [("lshape", L_SHAPE, 24, 10.0), ("rod", ROD, 20, 10.0), ("ball", BALL, 30, 7.5)]:
        vol = blobs(n, *shape, sigma=1.2 * 10 / vs)
        if vs != 10.0:  # same physical object on a finer grid
            vol = blobs(n, [tuple(c * 10 / vs for c in p) for p in shape[0]], shape[1], sigma=1.2 * 10 / vs)
        paths.append(write_volume(folder / f"{name}.mrc", vol, vs))
    return paths


def test_compute_matrix_from_maps_and_cli(tmp_path: Path):
    folder = tmp_path / "maps"
    _write_maps(folder)
    result = compute_similarity([folder], resolution=RES, angular_step=30, progress=False)
    assert result.names == ["ball", "lshape", "rod"]
    m = result.matrix
    assert np.array_equal(m, m.T) and np.allclose(np.diag(m), 1) and m.min() == -1
    assert (result.raw > 0).all()
    out, png = tmp_path / "m.csv", tmp_path / "m.png"
    args = ["similarity", "--templates", str(folder), "--out", str(out), "--plot", str(png),
            "--angular-step", "30", "--classes", "rod", "lshape", "--score", "fsc"]
    assert main(args) == 0
    names, matrix = read_similarity(out)
    assert names == ["rod", "lshape"] and matrix[0, 1] == -1  # two classes: stretched to -1
    assert png.stat().st_size > 1000


def test_compute_bad_inputs(tmp_path: Path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="a folder holding"):
        compute_similarity([tmp_path / "empty"])
    folder = tmp_path / "maps"
    paths = _write_maps(folder)
    with pytest.raises(InputError, match="missing: nope"):
        compute_similarity([folder], classes=["rod", "nope"])
    with pytest.raises(InputError, match="also"):
        compute_similarity([folder, paths[0]])
    write_volume(folder / "flat.mrc", np.zeros((8, 8, 8), np.float32), 10.0)
    out = tmp_path / "m.csv"
    assert main(["similarity", "--templates", str(folder), "--out", str(out)]) == 2
    assert "flat.mrc" in capsys.readouterr().err and not out.exists()


PDB_LINE = "ATOM  {i:5d}  CA  ALA A{r:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C\n"


def test_atomic_model_simulation(tmp_path: Path):
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(300, 3)) * [20.0, 10.0, 6.0] + 50.0
    text = "".join(PDB_LINE.format(i=i + 1, r=i + 1, x=p[0], y=p[1], z=p[2]) for i, p in enumerate(xyz)) + "END\n"
    path = tmp_path / "model.pdb"
    path.write_text(text)
    sm = simulate_model(path, RES)
    assert sm.voxel_size == RES / 4 and sm.density.max() > 0
    stack, radii = to_common_grid([load_structure(path, RES)], RES, VS)
    assert 20 < radii[0] < 70  # 95% of the mass of a 40 x 20 x 12 Å (sd) ellipsoid
    bad = tmp_path / "bad.pdb"
    bad.write_text("HELLO\n")
    with pytest.raises(InputError):
        load_structure(bad, RES)


SHREC = ["3gl1", "3h84", "1s3x", "3qm1", "5mrc"]


@pytest.mark.parametrize("name", ["3gl1", "1s3x"])
def test_shrec_rotated_copy_scores_high(shared_data: Path, name: str):
    maps = [load_structure(shared_data / "templates" / "maps_10A" / f"{name}.mrc", RES)]
    stack, radii = to_common_grid(maps, RES, VS, margin=0.25)
    pose = random_matrices(1, 11)[0]
    target = rotate_volume(stack[0], pose)
    for score in ("ncc", "fsc"):
        result = search_pose(target, stack[0], voxel_size=VS, resolution=RES, score=score, angular_step=30, device="cpu")
        assert result.scores[0] >= 0.95, (score, result.scores)


def test_shrec_model_matches_its_map(shared_data: Path):
    model = load_structure(shared_data / "templates" / "pdb" / "3qm1.pdb", RES)
    own, other = (load_structure(shared_data / "templates" / "maps_10A" / f"{n}.mrc", RES) for n in ("3qm1", "1s3x"))
    stack, _ = to_common_grid([model, own, other], RES, VS, margin=0.25)
    result = search_pose(stack[1:], stack[0], voxel_size=VS, resolution=RES, angular_step=30, device="cpu")
    assert result.scores[0] > 0.98 and result.scores[0] > result.scores[1]


def test_shrec_ranking(shared_data: Path):
    paths = [shared_data / "templates" / "maps_10A" / f"{n}.mrc" for n in SHREC]
    result = compute_similarity(paths, resolution=RES, angular_step=30, scale="none", progress=False)
    m, i = result.matrix, {n: k for k, n in enumerate(result.names)}
    assert np.array_equal(m, m.T)
    alike = [m[i["3gl1"], i["3h84"]], m[i["3gl1"], i["1s3x"]], m[i["3h84"], i["1s3x"]]]
    assert min(alike) > m[i["3qm1"], i["5mrc"]] + 0.3
    assert m[i["3gl1"], i["3h84"]] == max(m[i["3gl1"], j] for j in range(len(m)) if j != i["3gl1"])


@pytest.mark.slow
def test_shrec_full_matrix(shared_data: Path, tmp_path: Path):
    result = compute_similarity([shared_data / "templates" / "maps_10A"], resolution=RES, progress=False)
    assert len(result.names) == 12 and np.array_equal(result.matrix, result.matrix.T)
    assert result.seconds > 0  # the time is reported; figures live in benchmarks/, not in tests
