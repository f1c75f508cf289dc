"""Resampling of cubic boxes: onto another voxel size, binned by 2, cropped, upsampled by 2, FFT sizes."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


def resample_centred(density: np.ndarray, voxel_size: float, new_voxel_size: float, box: int) -> np.ndarray:
    """``density`` (voxel ``voxel_size``) on a ``box``^3 grid of ``new_voxel_size``, centre N//2 onto box//2."""
    scale = new_voxel_size / voxel_size
    c_in = np.array(density.shape, dtype=float) // 2
    c_out = np.full(3, box // 2, dtype=float)
    out = ndimage.affine_transform(density, np.full(3, scale), offset=c_in - scale * c_out,
                                   output_shape=(box,) * 3, order=3, mode="constant", cval=0.0)
    return out.astype(np.float32)


def bin2(stack: torch.Tensor) -> torch.Tensor:
    """Average 2x2x2 blocks of (B, n, n, n) volumes (n cropped to even)."""
    even = stack.shape[-1] - stack.shape[-1] % 2
    return F.avg_pool3d(stack[:, None, :even, :even, :even], kernel_size=2, stride=2)[:, 0]


def crop_centre(stack: torch.Tensor, m: int) -> torch.Tensor:
    """The central m^3 of (B, n, n, n) volumes, its centre voxel m // 2 at the box's n // 2."""
    start = stack.shape[-1] // 2 - m // 2
    return stack[..., start : start + m, start : start + m, start : start + m]


def upsample2(volumes: torch.Tensor) -> torch.Tensor:
    """Volumes (B, n, n, n), n even, on a grid twice as fine (Fourier zero-padding): voxel i -> 2i.

    Trilinear interpolation of a map filtered near Nyquist loses much of its signal; on
    the finer grid it is accurate.
    """
    n = volumes.shape[-1]
    if n % 2:
        raise ValueError(f"upsample2 needs an even box, got {n}")
    spec = torch.fft.rfftn(volumes.to(torch.float32), dim=(-3, -2, -1))
    h = n // 2
    out = torch.zeros(volumes.shape[:-3] + (2 * n, 2 * n, n + 1), dtype=spec.dtype, device=spec.device)
    for zs, zd in ((slice(0, h), slice(0, h)), (slice(h, n), slice(2 * n - h, 2 * n))):
        for ys, yd in ((slice(0, h), slice(0, h)), (slice(h, n), slice(2 * n - h, 2 * n))):
            out[..., zd, yd, : h + 1] = spec[..., zs, ys, :]
    return torch.fft.irfftn(out, s=(2 * n,) * 3, dim=(-3, -2, -1)) * 8.0


def fft_size(n: int) -> int:
    """Smallest even number >= n whose only prime factors are 2, 3, 5."""
    m = max(2, n + (n % 2))
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 2
