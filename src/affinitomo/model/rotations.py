"""Continuous rotation parameterisations and rotating volumes in torch (RELION convention).

The matrices A act on (x, y, z) column vectors and rotate the canonical (reference) frame
into the particle, as in :mod:`affinitomo.geometry`; :func:`rotate_volumes` matches
``geometry.rotate_volume`` (box centre at N//2, trilinear, zero outside).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def matrix_from_6d(params: torch.Tensor) -> torch.Tensor:
    """(N, 6) -> (N, 3, 3) by Gram-Schmidt (Zhou et al. 2019); columns are the new axes."""
    a1, a2 = params[:, :3], params[:, 3:6]
    b1 = F.normalize(a1, dim=1, eps=1e-6)
    b2 = F.normalize(a2 - (b1 * a2).sum(1, keepdim=True) * b1, dim=1, eps=1e-6)
    b3 = torch.cross(b1, b2, dim=1)
    return torch.stack([b1, b2, b3], dim=2)


def matrix_from_quaternion(params: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions (w, x, y, z), normalised here -> (N, 3, 3) rotation matrices."""
    q = F.normalize(params, dim=1, eps=1e-6)
    w, x, y, z = q.unbind(1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=1,
    ).reshape(-1, 3, 3)


def matrix_from_pose(params: torch.Tensor, kind: str) -> torch.Tensor:
    """Rotation matrices from the encoder's pose output ("6d" or "quaternion")."""
    if kind == "6d":
        return matrix_from_6d(params)
    if kind == "quaternion":
        return matrix_from_quaternion(params)
    raise ValueError(f"unknown rotation parameterisation {kind!r}")


def rotate_volumes(volumes: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Rotate (N, C, B, B, B) ``[z, y, x]`` volumes by A (N, 3, 3): out(c + A p) = in(c + p).

    ``grid_sample`` works in normalised (x, y, z) coordinates with align_corners=True,
    u = i / s - 1 with s = (B - 1) / 2. The input index sampled for output index o is
    c + A^T (o - c), i.e. u_in = A^T u + (I - A^T)(c / s - 1) 1, with c = B // 2.
    """
    n, _, d, h, w = volumes.shape
    if not (d == h == w):
        raise ValueError(f"rotate_volumes needs cubic boxes, got {d}x{h}x{w}")
    rt = matrices.transpose(1, 2).to(volumes.dtype)
    s = (d - 1) / 2
    shift = (d // 2) / s - 1.0
    eye = torch.eye(3, dtype=rt.dtype, device=rt.device)
    t = ((eye - rt) @ torch.full((3, 1), shift, dtype=rt.dtype, device=rt.device))
    theta = torch.cat([rt, t], dim=2)
    grid = F.affine_grid(theta, list(volumes.shape), align_corners=True)
    return F.grid_sample(volumes, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def matrix_from_rotvec(w: torch.Tensor) -> torch.Tensor:
    """(N, 3) rotation vectors (axis * angle, radians) -> (N, 3, 3) matrices (exponential map)."""
    zero = torch.zeros_like(w[:, 0])
    skew = torch.stack(
        [zero, -w[:, 2], w[:, 1], w[:, 2], zero, -w[:, 0], -w[:, 1], w[:, 0], zero], dim=1
    ).view(-1, 3, 3)
    return torch.linalg.matrix_exp(skew)
