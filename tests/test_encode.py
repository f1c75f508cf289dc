"""Encoding: streaming, batch-size independence, rotations, foreign checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affinitomo.encode import encode
from affinitomo.errors import InputError
from affinitomo.model.checkpoint import save_checkpoint
from affinitomo.model.loading import load_model
from affinitomo.model.train_config import config_from_dict
from affinitomo.model.vae import AffinityVAE


def write_model(path, box=16, **model):
    cfg = config_from_dict({"model": {"depth": 2, "channels": 4, "latent_dims": 3, **model}})
    torch.manual_seed(0)
    net = AffinityVAE(cfg.model, box)
    save_checkpoint(path, {"config": cfg.to_dict(), "classes": ["a", "b"], "model": net.state_dict(), "box": box})
    return path


def write_stack(path, n=11, box=16):
    np.save(path, np.random.default_rng(2).normal(size=(n, box, box, box)).astype(np.float32))
    return path


def test_encode_is_independent_of_batch_size(tmp_path):
    ckpt = write_model(tmp_path / "m.pt")
    stack = write_stack(tmp_path / "s.npy")
    ids = np.arange(100, 111)
    encode(ckpt, stack, ids, tmp_path / "a.npz", batch_size=3, device="cpu", progress=False)
    encode(ckpt, stack, ids, tmp_path / "b.npz", batch_size=256, device="cpu", progress=False)
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert sorted(a.files) == ["logvar", "mu", "particle_id", "pose"]
    assert list(a["particle_id"]) == list(ids) and a["mu"].shape == (11, 3) and a["pose"].shape == (11, 1)
    np.testing.assert_allclose(a["mu"], b["mu"], atol=1e-5)
    # Same as the model's own forward pass on the normalised data.
    model, _ = load_model(ckpt)
    x = np.load(stack)[:2]
    x = (x - x.mean((1, 2, 3), keepdims=True)) / x.std((1, 2, 3), keepdims=True)
    with torch.no_grad():
        mu = model(torch.from_numpy(x[:, None].astype(np.float32))).mu
    np.testing.assert_allclose(a["mu"][:2], mu.numpy(), atol=1e-4)


def test_rotation_model_exports_rotation_matrices(tmp_path):
    ckpt = write_model(tmp_path / "m.pt", decoder="rotation")
    encode(ckpt, write_stack(tmp_path / "s.npy"), np.arange(11), tmp_path / "l.npz", device="cpu", progress=False)
    lat = np.load(tmp_path / "l.npz")
    rot = lat["rotation"]
    assert rot.shape == (11, 3, 3) and lat["pose"].shape == (11, 6)
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-5)


def test_foreign_checkpoint_rejected_before_any_work(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="format"):
        encode(tmp_path / "other.pt", tmp_path / "missing.npy", np.arange(3), tmp_path / "l.npz", progress=False)
    assert not (tmp_path / "l.npz").exists()


def test_mismatches_are_input_errors_and_leave_nothing(tmp_path):
    ckpt = write_model(tmp_path / "m.pt")
    with pytest.raises(InputError, match="16"):
        encode(ckpt, write_stack(tmp_path / "s8.npy", box=8), np.arange(11), tmp_path / "l.npz", progress=False)
    with pytest.raises(InputError, match="rows"):
        encode(ckpt, write_stack(tmp_path / "s.npy"), np.arange(5), tmp_path / "l.npz", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "s.npy", "s8.npy"]


def test_prior_spearman():
    from affinitomo.model.prior_check import prior_spearman

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 6))
    unit = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    matrix = unit @ unit.T
    labels = np.repeat(np.arange(4), 10)
    mu = centres[labels] + 0.01 * rng.normal(size=(40, 6))
    assert prior_spearman(mu, labels, matrix) == pytest.approx(1.0)
    assert np.isnan(prior_spearman(mu[:10], labels[:10], matrix))
