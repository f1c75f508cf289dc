"""The template's norm under the missing wedge, for every rotation (:class:`WedgeNorm`).

The score is the NCC of ``W L p`` (particle) and ``W L A t`` (template rotated by A), where
``L`` is the soft low-pass of :class:`affinitomo.density.score.FourierScorer` and ``W`` the
missing-wedge mask of the tomogram frame (:func:`affinitomo.density.wedge.wedge_mask`,
tilt axis y, beam along z). Because ``W`` is a projection and ``L`` isotropic,
``<W L p, W L A t> = <q, A u>`` with ``q = W L p`` and ``u = L t``; only the template's norm
under the wedge, ``|W A u|``, depends on the pose, and it is computed from ``u``'s power
spectrum (:class:`WedgeNorm`).

Both masks act in the rFFT layout of ``[z, y, x]`` boxes; the wedge's edge follows
:func:`affinitomo.density.wedge.wedge_angles` (angle of the (k_x, k_z) line in [-90, 90]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from affinitomo.density.wedge import Wedge, wedge_filter


class WedgeNorm:
    """``|W A u|`` (real-space norm) of a template ``u`` rotated by each A, without rotating ``u``.

    On the n-grid, ``A u`` has the spectrum ``U(A^T k)`` at the integer frequencies k, where U
    is the continuous (DTFT) spectrum of ``u``, so ``|W A u|^2 = (1/n^3) sum_k w_k W(k)
    |U(A^T k)|^2`` over the measured half spectrum (w: Hermitian weights). ``|U|^2`` is
    sampled from ``u`` zero-padded ``oversample`` times (trilinear). Only frequencies holding
    ``1 - 1e-4`` of the power, radially, are summed (the same for every rotation).
    """

    def __init__(self, u: torch.Tensor, wedge: Wedge, oversample: int = 2, chunk: int = 2**22):
        n = u.shape[-1]
        m = oversample * n
        dev = u.device
        padded = torch.zeros((m, m, m), device=dev)
        padded[:n, :n, :n] = u.to(torch.float32) - u.to(torch.float32).mean()
        spec = torch.fft.fftshift(torch.fft.fftn(padded))
        self.power_map = (spec.real**2 + spec.imag**2)[None, None]  # (1, 1, m, m, m), zero frequency at m//2
        self.scale = oversample
        self.m = m
        fz = torch.fft.fftfreq(n, device=dev) * n
        fx = torch.fft.rfftfreq(n, device=dev) * n
        kz, ky, kx = torch.meshgrid(fz, fz, fx, indexing="ij")
        k = torch.stack([kx, ky, kz], dim=-1).reshape(-1, 3)  # x, y, z
        weight = torch.full((n, n, n // 2 + 1), 2.0, device=dev)
        weight[..., 0] = 1.0
        if n % 2 == 0:
            weight[..., -1] = 1.0
        measured = wedge_filter(n, wedge, dev).expand(n, n, n // 2 + 1).reshape(-1) > 0
        own = torch.fft.rfftn(u.to(torch.float32) - u.to(torch.float32).mean())
        radial = (own.real**2 + own.imag**2).reshape(-1) * weight.reshape(-1)
        r = k.norm(dim=1)
        order = torch.argsort(r)
        cum = torch.cumsum(radial[order], 0) / radial.sum().clamp_min(1e-20)
        r_max = float(r[order][int(torch.searchsorted(cum, torch.tensor(1 - 1e-4, device=dev)).clamp_max(len(r) - 1))])
        keep = measured & (r <= r_max + 0.5) & (r > 0)
        self.k = k[keep]
        self.weight = weight.reshape(-1)[keep] / float(n**3)
        self.chunk = max(1, chunk // max(1, len(self.k)))
        self.total = None if wedge is not None else float((u.to(torch.float32) - u.to(torch.float32).mean()).norm())

    def __call__(self, matrices: torch.Tensor) -> torch.Tensor:
        """Norms (M,) for matrices (M, 3, 3) acting on (x, y, z)."""
        m = matrices.reshape(-1, 3, 3).to(self.k.dtype)
        if self.total is not None:  # no wedge: rotation keeps the norm
            return torch.full(matrices.shape[:-2], self.total, device=m.device)
        out = []
        for s in range(0, len(m), self.chunk):
            a = m[s : s + self.chunk]
            rk = torch.einsum("mji,kj->mki", a, self.k)  # A^T k, (M, K, 3) in x, y, z
            idx = self.m // 2 + self.scale * rk
            grid = (idx * (2.0 / (self.m - 1)) - 1.0)[None, :, :, None, :]  # (1, M, K, 1, 3)
            p = F.grid_sample(self.power_map, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            out.append((p[0, 0, :, :, 0] @ self.weight).clamp_min(1e-20).sqrt())
        return torch.cat(out).reshape(matrices.shape[:-2])
