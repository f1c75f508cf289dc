"""Scores between cubic maps for every translation at once, by FFT (torch, CPU or GPU).

Two scores, both in [-1, 1] and both computed as one cross-correlation of normalised
spectra, so that the best translation comes from one inverse FFT:

- ``ncc``: normalised cross-correlation of the two maps low-pass filtered at the
  resolution (soft cosine edge), mean removed, over the whole box:
  ``sum_x a(x) b(x - t) / (|a| |b|)``.
- ``fsc``: the mean, over Fourier shells 1 .. K (K = the shell at the resolution), of the
  Fourier shell correlation of ``a`` and ``b`` shifted by ``t``. Each map's spectrum is
  divided shell by shell by its shell norm (and by sqrt(K)); the cross-correlation of two
  such spectra at shift t is then exactly ``(1/K) sum_s FSC_s(t)``.

Shifts ``t`` are in voxels, ordered (z, y, x): the moving map ``b`` shifted by ``+t``
matches ``a``. Circular: boxes must be padded so that allowed shifts do not wrap.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SCORES = ("ncc", "fsc")


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def rotate_volumes(volume: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Copies of a cubic ``[z, y, x]`` volume rotated by each matrix, trilinear, zero outside.

    Same convention as :func:`affinitomo.geometry.rotate_volume`: the output shows the
    input as a particle with pose A (output(c + A p) = input(c + p), c = N//2).
    ``volume`` (N, N, N), ``matrices`` (R, 3, 3) -> (R, N, N, N).
    """
    n = volume.shape[-1]
    a_t = matrices.to(volume.dtype).transpose(1, 2)  # maps output (x,y,z) offsets to input offsets
    uc = 2.0 * (n // 2) / (n - 1) - 1.0  # the centre N//2 in align_corners coordinates
    centre = torch.full((3,), uc, dtype=volume.dtype, device=volume.device)
    offset = centre - a_t @ centre
    theta = torch.cat([a_t, offset.expand(len(matrices), 3).unsqueeze(-1)], dim=2)
    grid = F.affine_grid(theta, [len(matrices), 1, n, n, n], align_corners=True)
    src = volume.expand(len(matrices), 1, n, n, n)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0]


def radial_frequency(shape: tuple[int, int, int], device: torch.device | str | None = None) -> torch.Tensor:
    """|k| in cycles/voxel on the rFFT grid of a ``[z, y, x]`` volume of ``shape``: (nz, ny, nx // 2 + 1)."""
    fz = torch.fft.fftfreq(shape[0], device=device)
    fy = torch.fft.fftfreq(shape[1], device=device)
    fx = torch.fft.rfftfreq(shape[2], device=device)
    return torch.sqrt(fz[:, None, None] ** 2 + fy[None, :, None] ** 2 + fx[None, None, :] ** 2)


def soft_lowpass(freq: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Low-pass transfer at ``freq`` (cycles/voxel): 1 below 0.9 ``cutoff``, 0 above 1.1, cosine edge between."""
    lo, hi = 0.9 * cutoff, 1.1 * cutoff
    edge = 0.5 * (1 + torch.cos(math.pi * (freq - lo) / (hi - lo)))
    return torch.where(freq <= lo, torch.ones_like(freq), torch.where(freq >= hi, torch.zeros_like(freq), edge))


class FourierScorer:
    """Normalised spectra and FFT cross-correlation for one cubic box size.

    ``voxel_size`` and ``resolution`` in Å; ``max_shift`` in voxels (shifts beyond it are
    not considered, so that circular wrap-around never scores).
    """

    def __init__(
        self,
        size: int,
        voxel_size: float,
        resolution: float,
        score: str = "ncc",
        max_shift: float | None = None,
        device: torch.device | str | None = None,
    ):
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.size, self.score = int(size), score
        self.device = torch.device(device) if device is not None else default_device()
        n = self.size
        freq = radial_frequency((n, n, n), self.device)
        # Hermitian weights: rfft keeps half the spectrum; planes x=0 (and Nyquist) appear once.
        weight = torch.full((n, n, n // 2 + 1), 2.0, device=self.device)
        weight[..., 0] = 1.0
        if n % 2 == 0:
            weight[..., -1] = 1.0
        self.weight = weight
        cutoff = min(voxel_size / resolution, 0.5)  # cycles / voxel
        self.cutoff = cutoff
        if score == "ncc":
            filt = soft_lowpass(freq, cutoff)
            filt[0, 0, 0] = 0.0
            self.filter = filt
        else:
            shell = torch.round(freq * n).long()
            self.n_shells = max(1, int(math.floor(cutoff * n)))
            self.shell = torch.where((shell >= 1) & (shell <= self.n_shells), shell, torch.zeros_like(shell))
            self.filter = (self.shell > 0).to(freq.dtype)
        idx = torch.fft.fftfreq(n, device=self.device) * n  # signed shift per index
        dist = torch.sqrt(idx[:, None, None] ** 2 + idx[None, :, None] ** 2 + idx[None, None, :] ** 2)
        limit = n // 2 - 1 if max_shift is None else max_shift
        self.shift_ok = (dist <= limit).reshape(-1)
        self._signed = idx.round().long()

    def spectra(self, volumes: torch.Tensor) -> torch.Tensor:
        """Normalised half spectra (B, N, N, N//2+1) of volumes (B, N, N, N)."""
        spec = torch.fft.rfftn(volumes.to(self.device, torch.float32), dim=(-3, -2, -1)) * self.filter
        power = spec.real**2 + spec.imag**2
        if self.score == "ncc":
            norm = torch.sqrt((power * self.weight).sum(dim=(-3, -2, -1)))
            return spec / norm.clamp_min(1e-12)[:, None, None, None]
        b = spec.shape[0]
        shell_power = torch.zeros(b, self.n_shells + 1, device=self.device)
        shell_power.index_add_(1, self.shell.reshape(-1), (power * self.weight).reshape(b, -1))
        shell_norm = torch.sqrt(shell_power).clamp_min(1e-12)
        shell_norm[:, 0] = float("inf")
        scale = 1.0 / (shell_norm * math.sqrt(self.n_shells))
        return spec * scale[:, self.shell]

    def correlate(self, ref_spectra: torch.Tensor, mov_spectra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best score and shift for every (reference, moving) pair.

        ``ref_spectra`` (M, ...) and ``mov_spectra`` (R, ...) from :meth:`spectra`.
        Returns scores (M, R) and shifts (M, R, 3) in voxels (z, y, x).
        """
        return self._best(ref_spectra[:, None] * mov_spectra.conj()[None])

    def correlate_matched(self, ref_spectra: torch.Tensor, mov_spectra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best score and shift for pairs (ref_spectra[i], mov_spectra[i]): (R,) and (R, 3)."""
        best, shifts = self._best((ref_spectra * mov_spectra.conj())[None])
        return best[0], shifts[0]

    def _best(self, prod: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.size
        corr = torch.fft.irfftn(prod, s=(n, n, n), dim=(-3, -2, -1)) * float(n**3)
        corr = corr.reshape(corr.shape[0], corr.shape[1], -1)
        corr = corr.masked_fill(~self.shift_ok, float("-inf"))
        best, flat = corr.max(dim=-1)
        z, rem = flat // (n * n), flat % (n * n)
        y, x = rem // n, rem % n
        shifts = torch.stack([self._signed[z], self._signed[y], self._signed[x]], dim=-1)
        return best, shifts


def resolve_device(name: str) -> str:
    """'auto' -> CUDA when present, else CPU."""
    return str(default_device()) if name == "auto" else name
