"""Pose refinement at encoding: the checkpoint's ``pose_refine_steps`` option, and its checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affinitomo.encode import encode
from affinitomo.errors import InputError
from affinitomo.model.checkpoint import save_checkpoint
from affinitomo.model.rotations import matrix_from_6d
from affinitomo.model.train_config import config_from_dict
from affinitomo.model.vae import AffinityVAE


def _rotation_model(path, box: int = 16, **options):
    cfg = config_from_dict({"model": {"decoder": "rotation", "filters": [4, 8], "latent_dims": 3}, **options})
    torch.manual_seed(0)
    net = AffinityVAE(cfg.model, box)
    save_checkpoint(path, {"config": cfg.to_dict(), "classes": ["a"], "model": net.state_dict(), "box": box})
    return path


def test_encode_follows_the_checkpoints_refine_steps(tmp_path):
    stack = tmp_path / "s.npy"
    np.save(stack, np.random.default_rng(0).normal(size=(5, 16, 16, 16)).astype(np.float32))
    ids = np.arange(5)
    plain = _rotation_model(tmp_path / "plain.pt", pose_refine_steps=0)
    refined = _rotation_model(tmp_path / "refined.pt")  # default: refined
    encode(plain, stack, ids, tmp_path / "p.npz", device="cpu", progress=False)
    encode(refined, stack, ids, tmp_path / "r.npz", device="cpu", progress=False)
    p, r = np.load(tmp_path / "p.npz"), np.load(tmp_path / "r.npz")
    np.testing.assert_allclose(p["pose"], r["pose"], atol=1e-6)  # same network, same encoder output
    encoder_rot = matrix_from_6d(torch.from_numpy(p["pose"])).double().numpy()
    np.testing.assert_allclose(p["rotation"], encoder_rot, atol=1e-5)
    assert np.abs(r["rotation"] - encoder_rot).max() > 1e-3  # refinement moved the rotations
    np.testing.assert_allclose(r["rotation"] @ r["rotation"].transpose(0, 2, 1), np.broadcast_to(np.eye(3), (5, 3, 3)),
                               atol=1e-5)
    with pytest.raises(InputError, match="refine"):
        encode(refined, stack, ids, tmp_path / "x.npz", device="cpu", progress=False, refine_steps=-1)


def test_negative_refine_steps_is_an_input_error():
    with pytest.raises(InputError, match="pose_refine_steps"):
        config_from_dict({"pose_refine_steps": -1})
