"""Local refinement at full size: compass search over rotation and sub-voxel shift.

For a particle ``q = W L p`` (unit norm) and a template ``u = L t``, the score of pose
(A, t) is ``<q, A u shifted by t> / |W A u|`` (see :mod:`.wedge_norm`). The numerator samples
the particle at ``c + t + A x`` for the template's support points x (the voxels holding
nearly all of its energy) (trilinear,
``grid_sample`` on the particle upsampled by 2, :func:`affinitomo.density.resample.upsample2`), so no rotated
template is built; the denominator comes from
:class:`.wedge_norm.WedgeNorm`. Each level moves every pose to the best of itself and its 6
rotation neighbours ``exp(+-h e_i) A`` and 6 shift neighbours ``t +- h' e_i``; a pose that
does not improve halves h and h' (pattern search).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from affinitomo.search.wedge_norm import WedgeNorm

#: Fraction of the template's energy kept in its support sphere.
SUPPORT_ENERGY = 0.995
#: Sampled points per batch of one grid_sample call (bounds memory).
SAMPLES_PER_BATCH = 2**23


class TemplateSupport:
    """A template's support points (P, 3) (x, y, z offsets from the centre), values and wedge norm.

    ``u`` is the low-passed template with its mean kept (zero background), so that its energy
    sits on the particle: since the particle has zero mean over the box, ``<q, A u>`` is the
    same with or without the template's mean. The voxels holding ``energy`` of ``u``'s
    energy are kept. The norm (:class:`WedgeNorm`) is that of the mean-free template.
    """

    def __init__(self, u: torch.Tensor, wedge, energy: float = SUPPORT_ENERGY):
        n = u.shape[-1]
        c = n // 2
        idx = torch.arange(n, device=u.device, dtype=torch.float32) - c
        zz, yy, xx = torch.meshgrid(idx, idx, idx, indexing="ij")
        e = u.reshape(-1) ** 2
        order = torch.argsort(e, descending=True)
        cum = torch.cumsum(e[order], 0) / e.sum().clamp_min(1e-20)
        count = int(torch.searchsorted(cum, torch.tensor(energy, device=u.device))) + 1
        keep = order[: min(count, len(e))]
        self.points = torch.stack([xx.reshape(-1), yy.reshape(-1), zz.reshape(-1)], 1)[keep]
        self.values = u.reshape(-1)[keep]
        self.centre = float(c)
        self.size = n
        self.norm = WedgeNorm(u - u.mean(), wedge)


def evaluate(q: torch.Tensor, support: TemplateSupport, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Scores (B, E) of particles q under poses a (B, E, 3, 3), shifts t (B, E, 3) (x, y, z voxels).

    ``q`` (B, m, m, m): the particles on their own grid (m = n) or upsampled (m = 2n, voxel i at 2i).
    """
    m = q.shape[-1]
    factor = m / support.size
    b, e = a.shape[:2]
    pos = support.centre + t[:, :, None, :] + torch.einsum("beij,pj->bepi", a, support.points)
    grid = (pos * (2.0 * factor / (m - 1)) - 1.0)[:, :, :, None, :]  # (B, E, P, 1, 3), x first
    sampled = F.grid_sample(q[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    num = (sampled[:, 0, :, :, 0] * support.values).sum(-1)
    return num / support.norm(a.reshape(-1, 3, 3)).reshape(b, e)


def _batched(q: torch.Tensor, support: TemplateSupport, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    e, p = a.shape[1], len(support.points)
    step = max(1, SAMPLES_PER_BATCH // (e * p))
    return torch.cat([evaluate(q[s : s + step], support, a[s : s + step], t[s : s + step]) for s in range(0, len(q), step)])


def _axis_steps(h: torch.Tensor) -> torch.Tensor:
    """The 6 rotations exp(+-h_b e_i) per row, (B, 6, 3, 3), h in degrees.

    Row-wise ``density.so3.local_axis_steps(I, h_b)`` (same order), in torch.
    """
    axes = torch.cat([torch.eye(3, device=h.device), -torch.eye(3, device=h.device)])  # (6, 3) rotation vectors
    vec = axes[None] * torch.deg2rad(h)[:, None, None]  # (B, 6, 3)
    angle = vec.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = vec / angle
    kx = torch.zeros(vec.shape[:2] + (3, 3), device=h.device)
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - kx.transpose(-1, -2)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    out = torch.eye(3, device=h.device) + s * kx + (1 - c) * (kx @ kx)  # Rodrigues
    return out


def refine_poses(
    q: torch.Tensor, support: TemplateSupport, a: np.ndarray, t: np.ndarray, step: float, levels: int,
    max_shift: float, group: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pattern-search refinement of poses a (B, 3, 3), shifts t (B, 3) of particles q against one template.

    Each iteration tries, per row, 6 rotation neighbours ``exp(+-h e_i) A`` and 6 shift
    neighbours ``t +- h' e_i`` and moves to the best if it scores higher; a row that does
    not improve halves h and h'. h starts at ``step``/2 (degrees), h' at 1 voxel; ``3 *
    levels`` iterations (about ``levels`` halvings). ``group`` (B,): rows with the same
    value are candidates of one pair; after the first iteration only each group's best row
    goes on. Shifts stay within ``max_shift`` voxels. Returns (scores, matrices, shifts) of
    the rows kept, groups in order of first appearance.
    """
    dev = q.device
    at = torch.as_tensor(a, dtype=torch.float32, device=dev)
    tt = torch.as_tensor(t, dtype=torch.float32, device=dev)
    score = _batched(q, support, at[:, None], tt[:, None])[:, 0]
    rows = torch.arange(len(q), device=dev)
    h_rot = torch.full((len(at),), step / 2, device=dev)
    h_sh = torch.ones(len(at), device=dev)
    unit = torch.cat([torch.eye(3, device=dev), -torch.eye(3, device=dev)])
    for it in range(3 * max(0, levels)):
        na = torch.cat([_axis_steps(h_rot) @ at[:, None], at[:, None].expand(-1, 6, 3, 3)], 1)  # (B, 12, 3, 3)
        nt = torch.cat([tt[:, None].expand(-1, 6, 3), tt[:, None] + unit[None] * h_sh[:, None, None]], 1)
        long = nt.norm(dim=-1, keepdim=True)
        nt = torch.where(long > max_shift, nt * (max_shift / long.clamp_min(1e-9)), nt)
        sc = _batched(q[rows], support, na, nt)
        best, arg = sc.max(dim=1)
        better = best > score + 1e-6
        sel = torch.arange(len(at), device=dev)
        at = torch.where(better[:, None, None], na[sel, arg], at)
        tt = torch.where(better[:, None], nt[sel, arg], tt)
        score = torch.where(better, best, score)
        h_rot = torch.where(better, h_rot, h_rot / 2)
        h_sh = torch.where(better, h_sh, h_sh / 2)
        if it == 0 and group is not None:
            keep = _best_per_group(group, score.cpu().numpy())
            group = None
            at, tt, score, rows, h_rot, h_sh = at[keep], tt[keep], score[keep], rows[keep], h_rot[keep], h_sh[keep]
    if group is not None:
        keep = _best_per_group(group, score.cpu().numpy())
        at, tt, score = at[keep], tt[keep], score[keep]
    return score.cpu().numpy().astype(float), at.cpu().numpy().astype(float), tt.cpu().numpy().astype(float)


def _best_per_group(group: np.ndarray, score: np.ndarray) -> torch.Tensor:
    """Index of the best row of each group, groups in order of first appearance."""
    _, first, inverse = np.unique(group, return_index=True, return_inverse=True)
    best = np.full(len(first), -1)
    for i in np.argsort(-score, kind="stable"):
        if best[inverse[i]] < 0:
            best[inverse[i]] = i
    order = np.argsort(first)
    return torch.as_tensor(best[order], dtype=torch.long)


#: Points per axis of :func:`posterior_mean_poses`' grid of rotation vectors.
POSTERIOR_GRID = 5
#: Random rotations per particle whose scores give the noise of one score.
NOISE_POSES = 16


def posterior_mean_poses(q: torch.Tensor, support: TemplateSupport, a: np.ndarray, t: np.ndarray,
                         step: float) -> np.ndarray:
    """Poses (B, 3, 3): each particle's pose averaged over its likelihood around the best pose a (B, 3, 3).

    The poses ``exp(d) a`` for rotation vectors d on a ``POSTERIOR_GRID``^3 grid within
    +-``step``/2 degrees about each axis (the coarse grid's cell) are scored at the shift t, and
    weighted by their likelihood under white noise, exp((s^2 - max s^2) / (2 sigma^2)) (s the
    score, clipped at 0; the amplitude fitted, the log-likelihood of a score s is s^2 / (2 sigma^2)),
    sigma the noise of one score: the median over the rows of the spread of their scores at
    ``NOISE_POSES`` random rotations of their pose. The mean is the chordal one (the rotation
    nearest the weighted sum of the matrices). A sharp likelihood leaves the best pose; a broad one
    (low SNR) gives the posterior mean, whose error is smaller than the maximum's.
    """
    from scipy.spatial.transform import Rotation

    from affinitomo.geometry import nearest_rotation

    dev = q.device
    g = np.linspace(-0.5, 0.5, POSTERIOR_GRID) * np.deg2rad(step)
    local = Rotation.from_rotvec(np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)).as_matrix()
    noise = Rotation.random(NOISE_POSES, random_state=0).as_matrix()
    a = np.asarray(a, dtype=float)

    def scores(left: np.ndarray) -> np.ndarray:
        poses = torch.as_tensor(np.einsum("kij,njl->nkil", left, a), dtype=torch.float32, device=dev)
        shifts = torch.as_tensor(t, dtype=torch.float32, device=dev)[:, None].expand(-1, len(left), 3)
        return _batched(q, support, poses, shifts).cpu().numpy().astype(float)

    sigma = max(float(np.median(scores(noise).std(axis=1))), 1e-6)
    s2 = np.clip(scores(local), 0.0, None) ** 2
    w = np.exp((s2 - s2.max(axis=1, keepdims=True)) / (2 * sigma**2))
    mean = np.einsum("nk,kij,njl->nil", w / w.sum(axis=1, keepdims=True), local, a)
    return nearest_rotation(mean)
