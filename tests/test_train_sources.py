"""Training on several sources, stratified validation, pose supervision, wedge-safe augmentation."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from affinitomo.errors import InputError
from affinitomo.geometry import euler_to_matrix, matrix_to_euler, random_matrices, rotate_volume
from affinitomo.io.particles import write_particles
from affinitomo.io.similarity import write_similarity
from affinitomo.io.stacks import SubtomoStack
from affinitomo.model import losses
from affinitomo.model.train_config import config_from_dict
from affinitomo.train.data import StackSet, cube_group, group_augment, rotate_exact, stratified_split, wedge_group
from affinitomo.train.labels import load_training_sources
from affinitomo.train.loop import train

SMALL = {"model": {"depth": 2, "channels": 4, "latent_dims": 4}, "batch_size": 16, "num_threads": 1, "min_steps": 0}


def wedge_mask(n: int, max_tilt: float = 60.0) -> np.ndarray:
    """Fourier mask [z, y, x] (fftshifted) of the measured region of a tilt series about Y."""
    k = np.arange(n) - n // 2
    kz, _, kx = np.meshgrid(k, k, k, indexing="ij")
    return np.abs(kz) <= np.abs(kx) * np.tan(np.radians(90 - max_tilt)) + 1e-9


def test_group_sizes_and_proper():
    for group, size in ((wedge_group(), 4), (cube_group(), 24)):
        assert len(group) == size
        assert np.allclose(np.linalg.det(group), 1)
        assert len({tuple(np.rint(g).ravel()) for g in group}) == size


def test_rotate_exact_matches_geometry():
    rng = np.random.default_rng(1)
    vol = np.zeros((12, 12, 12), np.float32)
    vol[2:10, 2:10, 2:10] = rng.normal(size=(8, 8, 8))  # background at the faces
    for g in cube_group():
        assert np.allclose(rotate_exact(vol, g), rotate_volume(vol, g, order=1), atol=1e-5)


@pytest.mark.parametrize("odd", [False, True])
def test_wedge_group_keeps_the_missing_wedge_and_90_degrees_does_not(odd):
    n = 17 if odd else 16
    rng = np.random.default_rng(0)
    mask = wedge_mask(n)
    spec = np.fft.ifftshift(mask) * np.fft.fftn(rng.normal(size=(n, n, n)))
    vol = np.fft.ifftn(spec).real.astype(np.float32)
    missing = np.fft.ifftshift(~mask)

    def leak(v):
        power = np.abs(np.fft.fftn(v)) ** 2
        return power[missing].sum() / power.sum()

    assert leak(vol) < 1e-6
    for g in wedge_group():
        assert leak(rotate_exact(vol, g)) < 1e-6
    quarter_y = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], float)
    assert leak(rotate_exact(vol, quarter_y)) > 0.1


def test_group_augment_updates_poses():
    rng = np.random.default_rng(3)
    template = np.zeros((16, 16, 16), np.float32)
    template[5:11, 7:9, 7:9] = 1
    template[5:7, 7:12, 7:9] = 1  # asymmetric
    poses = random_matrices(4, rng)
    batch = np.stack([rotate_volume(template, a) for a in poses])[:, None]
    out, turns = group_augment(batch, wedge_group(), rng)
    for i in range(4):
        expected = rotate_volume(template, turns[i] @ poses[i])
        assert np.abs(out[i, 0] - expected).max() < 1e-4


def test_stratified_split_keeps_small_groups_in_validation():
    rows = np.arange(1000)
    groups = np.r_[np.zeros(40, int), np.ones(960, int)]  # 40 real, 960 simulated
    tr, va = stratified_split(rows, groups, 0.1, 0)
    assert len(va) == 100 and not set(tr) & set(va) and len(tr) + len(va) == 1000
    assert (va < 40).sum() == 4
    tr2, va2 = stratified_split(rows, groups, 0.1, 0)
    assert np.array_equal(va, va2)
    tr, va = stratified_split(np.arange(5), np.arange(5), 0.1, 0)  # all groups of one
    assert len(va) == 1 and len(tr) == 4


def test_stack_set_reads_across_members(tmp_path):
    a = np.arange(3 * 8**3, dtype=np.float32).reshape(3, 8, 8, 8)
    b = -np.arange(2 * 8**3, dtype=np.float32).reshape(2, 8, 8, 8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    s = StackSet([SubtomoStack(tmp_path / "a.npy"), SubtomoStack(tmp_path / "b.npy")])
    assert len(s) == 5 and s.box == 8
    got = s.read(np.array([4, 0, 3]), "none")
    assert np.array_equal(got[:, 0], np.stack([b[1], a[0], b[0]]))
    np.save(tmp_path / "c.npy", np.zeros((2, 4, 4, 4), np.float32))
    with pytest.raises(InputError, match="c.npy.*boxes of 8"):
        StackSet([SubtomoStack(tmp_path / "a.npy"), SubtomoStack(tmp_path / "c.npy")])


def test_pose_loss():
    a = torch.as_tensor(random_matrices(5, 0), dtype=torch.float32)
    assert losses.pose_loss(a, a).item() < 1e-6
    turn = torch.as_tensor(euler_to_matrix(0, 0, 90.0), dtype=torch.float32)
    true = torch.cat([turn[None] @ a[:4], torch.full((1, 3, 3), float("nan"))])
    assert abs(losses.pose_loss(a, true).item() - 1.0) < 1e-5  # 1 - cos(90 degrees), NaN row left out
    pred = a.clone().requires_grad_(True)
    losses.pose_loss(pred, torch.full((5, 3, 3), float("nan"))).backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) == 0


# -- sources on disk -------------------------------------------------------------------
def _shape(kind: int, box: int) -> np.ndarray:
    z, y, x = np.mgrid[:box, :box, :box] - box // 2
    if kind == 0:  # an L: asymmetric
        return (((abs(y) < 2) & (abs(z) < 2) & (x > -5) & (x < 5)) | ((abs(x + 4) < 2) & (abs(z) < 2) & (y >= 0) & (y < 5))).astype(np.float32)
    return ((x**2 + y**2 + z**2) < 12).astype(np.float32)


def write_source(folder: Path, n: int, simulated: bool, seed: int, box: int = 16) -> tuple[Path, Path]:
    """A stack and its table: classes alternate 'ell'/'ball'; simulated ones have true angles."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    poses = random_matrices(n, rng)
    vols = [rotate_volume(_shape(i % 2, box), poses[i]) + 0.2 * rng.normal(size=(box,) * 3) for i in range(n)]
    np.save(folder / "subtomos.npy", np.stack(vols).astype(np.float32))
    angles = matrix_to_euler(poses)
    table = pd.DataFrame({
        "rlnTomoName": "t", "rlnCoordinateX": 8.0, "rlnCoordinateY": 8.0, "rlnCoordinateZ": 8.0,
        "rlnClassNumber": 0, "afmClassName": [("ell", "ball")[i % 2] if (simulated or i % 3) else "" for i in range(n)],
        "afmPixelSize": 10.0, "afmParticleId": np.arange(n),
    })
    if simulated:
        table["rlnAngleRot"], table["rlnAngleTilt"], table["rlnAnglePsi"] = angles.T
        table["afmSimulated"] = 1
    write_particles(folder / "particles.star", table)
    return folder / "subtomos.npy", folder / "particles.star"


@pytest.fixture
def sources(tmp_path):
    real = write_source(tmp_path / "real", 24, False, 0)
    sim = write_source(tmp_path / "sim", 40, True, 1)
    matrix = tmp_path / "m.csv"
    write_similarity(matrix, ["ball", "ell"], np.array([[1.0, 0.1], [0.1, 1.0]]))
    return real, sim, matrix


def test_load_training_sources(sources):
    real, sim, matrix = sources
    data = load_training_sources([real, sim], matrix)
    assert len(data.stack) == 64 and data.classes == ["ball", "ell"]
    assert data.is_simulated().sum() == 40 and not data.is_simulated()[:24].any()
    assert data.pose_known("simulated").sum() == 40 and data.pose_known("none").sum() == 0
    assert (data.labels[:24] >= 0).sum() == 16 and (data.labels[24:] >= 0).all()
    assert np.isfinite(data.rotations[24:]).all()  # read_particles gives angle-less rows 0, 0, 0
    assert not data.pose_known("simulated")[:24].any()


def test_load_training_sources_rejects_bad_input(sources, tmp_path):
    real, sim, matrix = sources
    from affinitomo.io.particles import read_particles

    t = read_particles(sim[1])
    t["afmSimulated"] = 2
    write_particles(tmp_path / "bad.star", t)
    with pytest.raises(InputError, match="bad.star.*afmSimulated"):
        load_training_sources([real, (sim[0], tmp_path / "bad.star")], matrix)
    with pytest.raises(InputError, match="rows"):
        load_training_sources([(real[0], sim[1])], matrix)


def test_cli_pairs_sources(sources, tmp_path):
    from affinitomo.cli import train as cli

    real, sim, matrix = sources
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--stack", str(real[0]), "--particles", str(real[1]), "--stack", str(sim[0]),
                              "--matrix", str(matrix), "--out", str(tmp_path / "o")])
    with pytest.raises(InputError, match="one --particles per --stack"):
        cli.run(args)
    assert not (tmp_path / "o").exists()


def test_training_with_simulated_poses_and_wedge_augmentation(sources, tmp_path):
    real, sim, matrix = sources
    data = load_training_sources([real, sim], matrix)
    cfg = config_from_dict({**SMALL, "model": {**SMALL["model"], "decoder": "rotation"}, "epochs": 3,
                            "augmentation": "wedge", "val_fraction": 0.25, "learning_rate": 3e-3})
    history = train(data, tmp_path / "out", cfg, device="cpu", progress=False)
    csv = pd.read_csv(tmp_path / "out" / "training.csv")
    assert {"train_pose", "val_pose", "val_real_total"} <= set(csv.columns)
    assert np.isfinite(csv["val_real_total"]).all() and (csv["train_pose"] > 0).all()
    assert history[-1]["train_pose"] < 2.0
    # the pose term is off without true poses or with pose_weight 0
    cfg0 = config_from_dict({**cfg.to_dict(), "true_poses": "none", "epochs": 1})
    h0 = train(data, tmp_path / "out0", cfg0, device="cpu", progress=False)
    assert h0[-1]["train_pose"] == 0
