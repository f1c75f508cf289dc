"""Model pieces: shapes, rotation convention, losses, schedules, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from affinitomo.errors import InputError
from affinitomo.geometry import random_matrices, rotate_volume
from affinitomo.model.checkpoint import load_checkpoint, save_checkpoint
from affinitomo.model.config import ModelConfig
from affinitomo.model.losses import affinity_loss, kl_divergence, reconstruction_loss
from affinitomo.geometry import angular_distance
from affinitomo.model.refine import refine_rotations
from affinitomo.model.rotations import matrix_from_6d, matrix_from_quaternion, matrix_from_rotvec, rotate_volumes
from affinitomo.model.schedules import Schedule
from affinitomo.model.vae import AffinityVAE


def asymmetric_volume(n: int = 20) -> np.ndarray:
    """Three blobs of different sizes on +x, +y, +z: no rotational symmetry.

    Zero beyond radius n/2 - 2, so the two samplers' different edge handling (scipy gives
    cval just outside the box, grid_sample interpolates towards zero) does not show.
    """
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    vol = np.zeros((n, n, n), np.float32)
    for (px, py, pz), s in [((4, 0, 0), 1.2), ((0, 2, 0), 1.6), ((0, 0, 5), 1.0)]:
        vol += np.exp(-((x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2) / (2 * s**2))
    vol[np.sqrt(x**2 + y**2 + z**2) > n / 2 - 2] = 0
    return vol


@pytest.mark.parametrize("n", [20, 21])
def test_torch_rotation_matches_geometry_rotate_volume(n):
    vol = asymmetric_volume(n)
    mats = random_matrices(4, 5)
    ours = rotate_volumes(torch.from_numpy(np.stack([vol] * 4))[:, None], torch.from_numpy(mats).float())
    for i, a in enumerate(mats):
        ref = rotate_volume(vol, a, order=1)
        np.testing.assert_allclose(ours[i, 0].numpy(), ref, atol=2e-4)


def test_identity_rotation_is_identity():
    vol = torch.from_numpy(asymmetric_volume(16))[None, None]
    out = rotate_volumes(vol, torch.eye(3)[None])
    np.testing.assert_allclose(out.numpy(), vol.numpy(), atol=1e-5)


def test_6d_and_quaternion_give_rotations():
    torch.manual_seed(0)
    for mats in (matrix_from_6d(torch.randn(10, 6)), matrix_from_quaternion(torch.randn(10, 4))):
        eye = mats @ mats.transpose(1, 2)
        np.testing.assert_allclose(eye.numpy(), np.broadcast_to(np.eye(3), (10, 3, 3)), atol=1e-5)
        np.testing.assert_allclose(torch.linalg.det(mats).numpy(), 1.0, atol=1e-5)
    # Quaternion convention (w, x, y, z) agrees with scipy's (x, y, z, w).
    q = torch.randn(5, 4)
    q = q / q.norm(dim=1, keepdim=True)
    ref = Rotation.from_quat(q[:, [1, 2, 3, 0]].numpy()).as_matrix()
    np.testing.assert_allclose(matrix_from_quaternion(q).numpy(), ref, atol=1e-5)
    # 6D of a matrix's first two columns gives the matrix back.
    a = torch.from_numpy(random_matrices(5, 1)).float()
    np.testing.assert_allclose(matrix_from_6d(torch.cat([a[:, :, 0], a[:, :, 1]], 1)).numpy(), a.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(decoder="rotation"),
        dict(decoder="rotation", rotation="quaternion", batch_norm=False),
        dict(filters=[4, 8], pose_dims=0, output="sigmoid"),
    ],
)
def test_vae_shapes(kwargs):
    cfg = ModelConfig(depth=2, channels=4, latent_dims=5, **kwargs)
    model = AffinityVAE(cfg, 16)
    out = model(torch.randn(3, 1, 16, 16, 16))
    assert out.recon.shape == (3, 1, 16, 16, 16)
    assert out.mu.shape == out.logvar.shape == (3, 5)
    assert out.pose.shape == (3, cfg.pose_size())
    if cfg.decoder == "rotation":
        assert model.rotation_matrices(out.pose).shape == (3, 3, 3)


def test_logvar_is_bounded_so_the_kl_cannot_explode():
    """Heads that would emit log-variances of +-1000 give +-LOGVAR_BOUND at most, a finite KL."""
    from affinitomo.model.encoder import LOGVAR_BOUND

    model = AffinityVAE(ModelConfig(depth=2, channels=4, latent_dims=5), 16)
    raw = torch.tensor([1000.0, -1000.0, 0.0, 1.0, -3.0])
    with torch.no_grad():
        model.encoder.heads.weight[5:10] = 0.0
        model.encoder.heads.bias[5:10] = raw
    out = model(torch.randn(4, 1, 16, 16, 16))
    expected = LOGVAR_BOUND * torch.tanh(raw / LOGVAR_BOUND)
    torch.testing.assert_close(out.logvar, expected.expand(4, 5))
    assert out.logvar.abs().max() <= LOGVAR_BOUND
    assert abs(out.logvar[0, 3].item() - 1.0) < 0.01  # near 0 the bound is ~the identity
    assert torch.isfinite(kl_divergence(out.mu, out.logvar))


def test_bad_model_config_is_input_error():
    with pytest.raises(InputError, match="model.depth"):
        AffinityVAE(ModelConfig(depth=3), 20)
    with pytest.raises(InputError, match="model.decoder"):
        AffinityVAE(ModelConfig(decoder="splat"), 32)


def test_affinity_loss_vectorised_matches_pair_loop():
    torch.manual_seed(1)
    mu = torch.randn(9, 4, requires_grad=True)
    labels = torch.tensor([0, 1, 2, -1, 1, 0, 2, -1, 0])
    matrix = torch.tensor([[1.0, 0.4, -0.3], [0.4, 1.0, 0.1], [-0.3, 0.1, 1.0]])
    loss = affinity_loss(mu, labels, matrix)
    keep = [i for i in range(9) if labels[i] >= 0]
    terms = [
        abs(torch.nn.functional.cosine_similarity(mu[i], mu[j], dim=0) - matrix[labels[i], labels[j]])
        for a, i in enumerate(keep) for j in keep[a + 1 :]
    ]
    assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-6)
    loss.backward()
    assert mu.grad[3].abs().sum() == 0  # unlabelled rows take no part
    assert affinity_loss(mu[:1], labels[:1], matrix).item() == 0.0


def test_kl_and_recon():
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    assert kl_divergence(mu, logvar).item() == 0.0
    mu = torch.ones(4, 3)
    assert kl_divergence(mu, logvar, "mean").item() == pytest.approx(0.5)
    assert kl_divergence(mu, logvar, "sum").item() == pytest.approx(1.5)
    x = torch.rand(2, 1, 4, 4, 4)
    assert reconstruction_loss(x, x, "mse").item() == 0.0
    assert reconstruction_loss(x, x.round(), "bce").item() > 0


def test_schedules():
    assert Schedule("flat", max=2.0).values(5) == [2.0] * 5
    ramp = Schedule("ramp", min=0.0, max=1.0, ratio=0.5).values(10)
    assert ramp[0] == 0.0 and ramp[5:] == [1.0] * 5 and all(np.diff(ramp) >= 0)
    lin = Schedule("cycle_linear", min=0.0, max=1.0, cycles=2, ratio=0.5).values(8)
    assert lin == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0]
    sig = Schedule("cycle_sigmoid", min=0.0, max=1.0, cycles=2, ratio=0.5).values(8)
    assert sig[0] == 0.0 and sig[1] == pytest.approx(0.5) and sig[2] == pytest.approx(1.0) and sig[3] == 1.0
    cos = Schedule("cycle_cosine", min=0.2, max=1.2, cycles=1, ratio=1.0).values(4)
    assert cos[0] == pytest.approx(0.2) and cos[2] == pytest.approx(0.7)
    assert Schedule("bogus").problems("beta")[0][0] == "beta.kind"


def test_checkpoint_roundtrip_and_foreign_files(tmp_path):
    model = AffinityVAE(ModelConfig(depth=1, channels=2, latent_dims=2), 8)
    path = tmp_path / "m.pt"
    save_checkpoint(path, {"config": {"a": 1}, "classes": ["x"], "model": model.state_dict(), "box": 8})
    data = torch.load(path, weights_only=True)
    assert data["format"] == "affinitomo-checkpoint" and "version" in data
    assert load_checkpoint(path)["classes"] == ["x"]
    torch.save({"model": model.state_dict()}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="format"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(InputError, match="weights_only"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pt", "m.pt", "other.pt"]


def test_matrix_from_rotvec_matches_scipy():
    w = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    ref = Rotation.from_rotvec(w.numpy().astype(float)).as_matrix()
    np.testing.assert_allclose(matrix_from_rotvec(w).numpy(), ref, atol=1e-5)


class _FixedCanonical(torch.nn.Module):
    """A stand-in rotation decoder whose canonical volume is a known map, whatever the latent."""

    def __init__(self, volume: np.ndarray):
        super().__init__()
        self.volume = torch.from_numpy(volume)[None, None]

    def canonical(self, z: torch.Tensor) -> torch.Tensor:
        return self.volume.expand(len(z), -1, -1, -1, -1)


def test_refine_rotations_recovers_the_pose_from_a_nearby_start():
    """Particles of a known map at random poses A; starting 15 degrees off, refinement gets within 3."""
    vol = asymmetric_volume(20)
    true = random_matrices(4, 3)
    x = torch.from_numpy(np.stack([rotate_volume(vol, a) for a in true]))[:, None]
    axes = Rotation.random(4, random_state=4).apply([1.0, 0.0, 0.0])  # random unit axes
    start = true @ Rotation.from_rotvec(axes * np.radians(15)).as_matrix()
    assert np.allclose(angular_distance(start, true), 15, atol=1e-6)
    with torch.no_grad():  # as in encode_stack
        refined = refine_rotations(_FixedCanonical(vol), x, torch.zeros(4, 2), torch.from_numpy(start).float())
    assert angular_distance(refined.double().numpy(), true).max() < 3.0
    unchanged = refine_rotations(_FixedCanonical(vol), x, torch.zeros(4, 2), torch.from_numpy(start).float(), steps=0)
    np.testing.assert_allclose(unchanged.numpy(), start, atol=1e-6)
