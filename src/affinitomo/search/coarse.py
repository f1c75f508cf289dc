"""Global search on maps of half the box (binned by 2, or the central crop): every particle against
every template rotation of an SO(3) grid.

Scores are the NCC of :mod:`.wedge_norm` at a few integer shifts around the box centre, computed as
one matrix product of normalised spectra (particle spectra times the shift phase, against the
rotated template spectra), which is exactly the FFT cross-correlation of
:class:`affinitomo.density.score.FourierScorer` at those shifts, without the cost of a full
inverse FFT per (particle, rotation) pair.
"""

from __future__ import annotations

import math
import numpy as np
import torch

from affinitomo.density.score import FourierScorer, rotate_volumes

#: Rotations per batch of rotated templates, and particles per batch of the product.
ROTATION_CHUNK = 256


def shift_offsets(radius: float) -> np.ndarray:
    """Integer shifts (z, y, x) with length <= ``radius`` (the zero shift first)."""
    r = int(math.floor(radius + 1e-9))
    g = np.array(np.meshgrid(*([np.arange(-r, r + 1)] * 3), indexing="ij")).reshape(3, -1).T
    g = g[np.sqrt((g**2).sum(1)) <= radius + 1e-9]
    return g[np.argsort((g**2).sum(1), kind="stable")]


class CoarseSearch:
    """Global rotation search of templates (C, m, m, m), reduced like the particles, for one grid."""

    def __init__(self, scorer: FourierScorer, templates_reduced: torch.Tensor, grid: np.ndarray, shift_radius: float):
        self.scorer = scorer
        n = scorer.size
        self.sel = (scorer.filter.expand(n, n, n // 2 + 1) > 0).reshape(-1)
        self.sqrt_w = scorer.weight.reshape(-1)[self.sel].sqrt()
        fz = torch.fft.fftfreq(n, device=scorer.device) * n
        fx = torch.fft.rfftfreq(n, device=scorer.device) * n
        kz, ky, kx = torch.meshgrid(fz, fz, fx, indexing="ij")
        k = torch.stack([kz, ky, kx], dim=-1).reshape(-1, 3)[self.sel]
        self.offsets = shift_offsets(shift_radius)
        o = torch.as_tensor(self.offsets, dtype=torch.float32, device=scorer.device)
        self.phase = torch.polar(torch.ones(len(o), len(k), device=scorer.device), 2 * math.pi * (o @ k.T) / n)
        self.templates = templates_reduced
        self.grid = grid
        self.grid_t = torch.as_tensor(grid, dtype=torch.float32, device=scorer.device)

    def _flat(self, volumes: torch.Tensor) -> torch.Tensor:
        return self.scorer.spectra(volumes).reshape(len(volumes), -1)[:, self.sel] * self.sqrt_w

    def template_spectra(self, c: int) -> torch.Tensor:
        """Real representation (R, 2K) of the normalised spectra of template c under every rotation."""
        out = []
        for s in range(0, len(self.grid_t), ROTATION_CHUNK):
            spec = self._flat(rotate_volumes(self.templates[c], self.grid_t[s : s + ROTATION_CHUNK]))
            out.append(torch.cat([spec.real, spec.imag], dim=1))
        return torch.cat(out)

    def particle_spectra(self, particles_reduced: torch.Tensor) -> torch.Tensor:
        """Real representation (B, S, 2K) of the normalised particle spectra at every shift."""
        spec = self._flat(particles_reduced)[:, None, :] * self.phase[None]
        return torch.cat([spec.real, spec.imag], dim=2)

    def top(self, x: torch.Tensor, y: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Best ``keep`` (score, rotation index, shift index) per particle of ``x`` (B, S, 2K) against ``y`` (R, 2K)."""
        b, s, _ = x.shape
        vals = torch.full((b, keep), -float("inf"), device=x.device)
        rots = torch.zeros((b, keep), dtype=torch.long, device=x.device)
        shs = torch.zeros((b, keep), dtype=torch.long, device=x.device)
        xf = x.reshape(b * s, -1)
        for r0 in range(0, len(y), ROTATION_CHUNK):
            sc = (xf @ y[r0 : r0 + ROTATION_CHUNK].T).reshape(b, s, -1)
            best, arg_s = sc.max(dim=1)  # (b, r)
            idx = torch.arange(r0, r0 + best.shape[1], device=x.device).expand(b, -1)
            allv = torch.cat([vals, best], 1)
            pick = allv.topk(keep, dim=1).indices
            vals = allv.gather(1, pick)
            rots = torch.cat([rots, idx], 1).gather(1, pick)
            shs = torch.cat([shs, arg_s], 1).gather(1, pick)
        return vals, rots, shs
