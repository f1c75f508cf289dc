"""Training: options, data, exact resume, NaN guard, CLI, distributed (slow)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from affinitomo.errors import InputError
from affinitomo.io.stacks import SubtomoStack
from affinitomo.model import losses
from affinitomo.model.checkpoint import load_checkpoint
from affinitomo.model.train_config import config_from_dict, parse_options
from affinitomo.train.data import rot90_augment, split_indices
from affinitomo.train.loop import TrainingData, TrainingDiverged, train

SMALL = {"model": {"depth": 2, "channels": 4, "latent_dims": 4}, "batch_size": 16, "num_threads": 1, "min_steps": 0}


def make_stack(path: Path, n: int = 48, box: int = 16, seed: int = 0) -> Path:
    """Two shapes (a ball and a bar) in noise: learnable, like tiny subtomograms."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:box, :box, :box] - box // 2
    ball = (x**2 + y**2 + z**2 < 16).astype(np.float32)
    bar = ((abs(x) < 6) & (abs(y) < 2) & (abs(z) < 2)).astype(np.float32)
    data = np.stack([(ball if i % 2 else bar) + 0.3 * rng.normal(size=ball.shape) for i in range(n)])
    np.save(path, data.astype(np.float32))
    return path


def make_data(tmp_path: Path, n: int = 48) -> TrainingData:
    labels = np.array([i % 2 if i % 3 else -1 for i in range(n)])
    matrix = np.array([[1.0, -0.2], [-0.2, 1.0]], np.float32)
    return TrainingData(SubtomoStack(make_stack(tmp_path / "s.npy", n)), labels, ["bar", "ball"], matrix)


def test_options_parse_and_reject(tmp_path):
    cfg = parse_options('{"epochs": 3, "beta": 0.5, "gamma": {"kind": "cycle_cosine", "cycles": 2}}')
    assert cfg.epochs == 3 and cfg.beta.kind == "flat" and cfg.beta.max == 0.5 and cfg.gamma.cycles == 2
    yml = tmp_path / "o.yaml"
    yml.write_text("model:\n  decoder: rotation\n  filters: [8, 16]\nrecon_loss: bce\n")
    cfg = parse_options(str(yml))
    assert cfg.model.filters == [8, 16] and cfg.normalise == "minmax" and cfg.model.output == "sigmoid"
    assert config_from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
    with pytest.raises(InputError, match="model.dept"):
        parse_options('{"model": {"dept": 3}}')
    with pytest.raises(InputError, match="'epochs'.*int"):
        parse_options('{"epochs": "ten"}')
    with pytest.raises(InputError, match="beta.kind"):
        parse_options('{"beta": {"kind": "wobble"}}')
    with pytest.raises(InputError, match="valid JSON"):
        parse_options('{"epochs": }')
    with pytest.raises(InputError, match="options file"):
        parse_options(str(tmp_path / "missing.yaml"))


def test_stack_reads_rows_and_rejects_bad_files(tmp_path):
    stack = SubtomoStack(make_stack(tmp_path / "s.npy", 10, 8))
    raw = np.load(tmp_path / "s.npy")
    batch = stack.read(np.array([7, 2, 5]), "none")
    np.testing.assert_array_equal(batch[:, 0], raw[[7, 2, 5]])
    z = stack.read(np.array([1, 3]), "zscore")
    np.testing.assert_allclose(z.reshape(2, -1).mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(z.reshape(2, -1).std(1), 1, atol=1e-4)
    mm = stack.read(np.array([4]), "minmax")
    assert mm.min() == 0.0 and mm.max() == pytest.approx(1.0)
    np.save(tmp_path / "bad.npy", np.zeros((3, 8, 8, 9), np.float32))
    with pytest.raises(InputError, match="cubic"):
        SubtomoStack(tmp_path / "bad.npy")
    np.save(tmp_path / "f64.npy", np.zeros((3, 8, 8, 8)))
    with pytest.raises(InputError, match="float32"):
        SubtomoStack(tmp_path / "f64.npy")
    nan = np.zeros((3, 8, 8, 8), np.float32)
    nan[1, 2, 2, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(InputError, match=r"rows \[1\]"):
        SubtomoStack(tmp_path / "nan.npy").read(np.arange(3))


def test_rot90_augment_is_a_proper_rotation():
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(5, 1, 6, 6, 6)).astype(np.float32)
    out = rot90_augment(vol, rng)
    for a, b in zip(vol, out):
        assert np.allclose(np.sort(a.ravel()), np.sort(b.ravel()))


def test_split_is_reproducible_and_disjoint():
    tr, va = split_indices(np.arange(50), 0.2, 3)
    tr2, va2 = split_indices(np.arange(50), 0.2, 3)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert len(va) == 10 and not set(tr) & set(va) and len(tr) + len(va) == 50


def test_train_writes_outputs(tmp_path):
    data = make_data(tmp_path)
    cfg = config_from_dict({**SMALL, "epochs": 3, "checkpoint_every": 2, "semi_supervised": True, "augmentation": "rot90"})
    history = train(data, tmp_path / "out", cfg, device="cpu", progress=False)
    assert len(history) == 3
    csv = pd.read_csv(tmp_path / "out" / "training.csv")
    assert list(csv["epoch"]) == [1, 2, 3]
    for col in ["train_total", "val_total", "train_recon", "train_kl", "train_affinity", "beta", "gamma", "samples_per_s"]:
        assert csv[col].notna().all(), col
    ckpt = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    assert ckpt["format"] == "affinitomo-checkpoint" and ckpt["epoch"] == 3 and ckpt["classes"] == ["bar", "ball"]
    assert isinstance(ckpt["config"], dict) and "optimizer" in ckpt and "rng" in ckpt
    assert (tmp_path / "out" / "best.pt").is_file() and (tmp_path / "out" / "loss.png").stat().st_size > 1000
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_resume_gives_exactly_the_uninterrupted_weights(tmp_path):
    data = make_data(tmp_path)
    cfg = config_from_dict({**SMALL, "epochs": 4, "checkpoint_every": 1, "seed": 5})
    train(data, tmp_path / "full", cfg, device="cpu", progress=False)

    def kill_after_two(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(data, tmp_path / "cut", cfg, device="cpu", progress=False, on_epoch_end=kill_after_two)
    assert load_checkpoint(tmp_path / "cut" / "model.pt")["epoch"] == 2
    train(data, tmp_path / "cut", cfg, device="cpu", progress=False, resume=True)
    full = load_checkpoint(tmp_path / "full" / "model.pt")
    cut = load_checkpoint(tmp_path / "cut" / "model.pt")
    assert cut["epoch"] == 4
    for key, value in full["model"].items():
        assert torch.equal(value, cut["model"][key]), key
    a = pd.read_csv(tmp_path / "full" / "training.csv").drop(columns=["samples_per_s", "seconds"])
    b = pd.read_csv(tmp_path / "cut" / "training.csv").drop(columns=["samples_per_s", "seconds"])
    pd.testing.assert_frame_equal(a, b)


def test_resume_with_changed_model_is_refused(tmp_path):
    data = make_data(tmp_path)
    train(data, tmp_path / "o", config_from_dict({**SMALL, "epochs": 1}), device="cpu", progress=False)
    other = config_from_dict({**SMALL, "epochs": 2, "model": {**SMALL["model"], "latent_dims": 3}})
    with pytest.raises(InputError, match="config.model"):
        train(data, tmp_path / "o", other, device="cpu", progress=False, resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    data = make_data(tmp_path)
    cfg = config_from_dict({**SMALL, "epochs": 5, "checkpoint_every": 1})
    real = losses.reconstruction_loss
    calls = {"n": 0}
    batches_per_epoch = 2  # 32 labelled particles -> 29 train, 3 val; batch 16 -> 2 train batches

    def poisoned(recon, target, kind="mse"):
        value = real(recon, target, kind)
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] > 2 * batches_per_epoch:  # first batch of epoch 3
                return value * float("nan")
        return value

    monkeypatch.setattr(losses, "reconstruction_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"epoch 3, batch 1.*recon=nan.*epoch 2"):
        train(data, tmp_path / "o", cfg, device="cpu", progress=False)
    ckpt = load_checkpoint(tmp_path / "o" / "model.pt")
    assert ckpt["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert len(pd.read_csv(tmp_path / "o" / "training.csv")) == 2
    assert not [p for p in (tmp_path / "o").iterdir() if p.name.startswith(".")]


def _write_table(path: Path, names: list[str]) -> None:
    from affinitomo.io.particles import write_particles

    n = len(names)
    write_particles(path, pd.DataFrame({
        "rlnTomoName": ["t"] * n, "rlnCoordinateX": np.arange(n, dtype=float), "rlnCoordinateY": 5.0,
        "rlnCoordinateZ": 5.0, "rlnClassNumber": 0, "afmClassName": names, "afmPixelSize": 10.0,
        "afmParticleId": np.arange(n),
    }))


def test_cli_train_and_encode(tmp_path):
    from affinitomo.cli import main

    n = 30
    make_stack(tmp_path / "s.npy", n)
    names = [["bar", "ball"][i % 2] if i % 3 else "" for i in range(n)]
    _write_table(tmp_path / "p.star", names)
    (tmp_path / "m.csv").write_text("ball,bar,cube\n1,-0.2,0\n-0.2,1,0.5\n0,0.5,1\n")
    opts = json.dumps({**SMALL, "epochs": 2})
    args = ["--stack", str(tmp_path / "s.npy"), "--particles", str(tmp_path / "p.star"),
            "--matrix", str(tmp_path / "m.csv"), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(["train", *args, "--options", opts, "--device", "cpu"]) == 0
    ckpt = load_checkpoint(tmp_path / "out" / "model.pt")
    assert ckpt["classes"] == ["ball", "bar"]  # matrix order, classes present in the table only
    assert main(["encode", "--checkpoint", str(tmp_path / "out" / "model.pt"), "--stack", str(tmp_path / "s.npy"),
                 "--particles", str(tmp_path / "p.star"), "--out", str(tmp_path / "lat.npz")]) == 0
    lat = np.load(tmp_path / "lat.npz")
    assert lat["mu"].shape == (n, 4) and list(lat["particle_id"]) == list(range(n))
    # A class missing from the matrix, and unknown options: exit 2, nothing written.
    _write_table(tmp_path / "p2.star", ["cone"] * n)
    bad = [a if a != str(tmp_path / "p.star") else str(tmp_path / "p2.star") for a in args]
    bad[bad.index(str(tmp_path / "out"))] = str(tmp_path / "out2")
    assert main(["train", *bad]) == 2
    assert main(["train", *args[:-3], "--out", str(tmp_path / "out3"), "--options", '{"epoch": 2}']) == 2
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    """torchrun-style launch of 2 gloo processes; rank 0 alone writes the outputs."""
    make_stack(tmp_path / "s.npy", 40)
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, numpy as np\n"
        "from affinitomo.model.train_config import config_from_dict\n"
        "from affinitomo.io.stacks import SubtomoStack\n"
        "from affinitomo.train.loop import TrainingData, train\n"
        f"d = TrainingData(SubtomoStack({str(tmp_path / 's.npy')!r}), np.arange(40) % 2, ['a', 'b'],"
        " np.array([[1, .3], [.3, 1]], np.float32))\n"
        f"train(d, {str(tmp_path / 'out')!r}, config_from_dict({SMALL!r} | {{'epochs': 2}}), device='cpu', progress=False)\n"
    )
    port = _free_port()
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE, text=True))
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    csv = pd.read_csv(tmp_path / "out" / "training.csv")
    assert len(csv) == 2 and csv["train_affinity"].notna().all()
    assert load_checkpoint(tmp_path / "out" / "model.pt")["epoch"] == 2
