"""Loss terms: reconstruction, KL divergence, affinity (all vectorised)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Mean over voxels and batch of the squared error ("mse") or binary cross-entropy ("bce")."""
    recon = recon.float()
    if kind == "mse":
        return F.mse_loss(recon, target)
    if kind == "bce":
        return F.binary_cross_entropy(recon.clamp(1e-6, 1 - 1e-6), target)
    raise ValueError(f"unknown reconstruction loss {kind!r}")


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """KL(q(z|x) || N(0, I)).

    "mean": averaged over latent dimensions and batch; "sum": summed over latent
    dimensions, averaged over the batch (the reference implementation's definition).
    """
    mu, logvar = mu.float(), logvar.float()
    per = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
    if reduction == "mean":
        return per.mean()
    if reduction == "sum":
        return per.sum(1).mean()
    raise ValueError(f"unknown KL reduction {reduction!r}")


def affinity_loss(mu: torch.Tensor, labels: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Mean over all pairs i<j of labelled particles of |cos(mu_i, mu_j) - A[c_i, c_j]|.

    ``labels`` are class indices into ``matrix``; -1 marks an unlabelled particle (left out
    of every pair). Returns 0 (with a gradient path) when fewer than two are labelled.
    """
    keep = labels >= 0
    mu = mu.float()[keep]
    lab = labels[keep]
    n = lab.shape[0]
    if n < 2:
        return mu.sum() * 0.0
    unit = F.normalize(mu, dim=1, eps=1e-8)
    cos = unit @ unit.T
    target = matrix.to(cos.dtype)[lab[:, None], lab[None, :]]
    iu = torch.triu_indices(n, n, offset=1, device=mu.device)
    return (cos[iu[0], iu[1]] - target[iu[0], iu[1]]).abs().mean()


def pose_loss(predicted: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean chordal distance between predicted and true rotations, over rows with a true pose.

    ``||R_pred - R_true||_F^2 / 4 = 1 - cos(angle)``: 0 when equal, 2 at 180 degrees, smooth
    everywhere (unlike the geodesic angle at 0), on the same [0, 2] scale as the affinity term.
    Rows of ``true`` holding NaN (pose unknown) are left out; 0 (with a gradient path) when
    none is known.

    Symmetry caveat: for a class with point-group symmetry several poses give the same
    particle; the loss then pulls towards one of them chosen by how the particle was
    simulated, which the encoder cannot see. The least-squares answer is the projection of
    the average of the equivalent rotations, so for such classes the loss stays high and
    the pose about the symmetry axis is arbitrary; poses of asymmetric classes are unaffected.
    """
    known = torch.isfinite(true).flatten(1).all(1)
    if not bool(known.any()):
        return predicted.sum() * 0.0
    diff = predicted.float()[known] - true[known].to(predicted.device, torch.float32)
    return diff.pow(2).sum((1, 2)).mean() / 4.0
