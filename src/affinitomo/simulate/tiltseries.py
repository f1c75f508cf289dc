"""Tilt-series projection and weighted back-projection (WBP), memory-bounded by Y-slabs.

Tilting about the Y axis keeps every Y row independent: each XZ slice of the
volume is a 2D problem. One sparse linear operator ``P`` (linear interpolation
onto the detector) projects an XZ slice at every tilt; it is applied to a slab of
Y rows at a time (``P @ slab`` with the slab as an ``(nz*nx, rows)`` matrix), and
its transpose back-projects. Geometry: voxel ``(x, z)`` (relative to ``N//2``)
lands on detector coordinate ``u = x cos θ + z sin θ`` (relative to ``n_det//2``),
consistent with the wedge convention in :mod:`affinitomo.simulate.tomogram`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
from scipy import fft as sfft
from affinitomo.progress import progress_bar

FFT_WORKERS = -1


def tilt_angles(tilt_min: float = -60.0, tilt_max: float = 60.0, step: float = 3.0) -> np.ndarray:
    """Tilt angles in degrees from ``tilt_min`` to ``tilt_max`` inclusive."""
    n = int(np.floor((tilt_max - tilt_min) / step + 1e-6)) + 1
    return tilt_min + step * np.arange(n)


def dose_symmetric_order(angles: Sequence[float], group: int = 2) -> np.ndarray:
    """Acquisition order of a dose-symmetric scheme (Hagen et al. 2017): indices into ``angles``.

    The tilt nearest 0° first, then ``group`` tilts at a time alternately on the positive and the
    negative side, each side outward; when one side is done the other continues to its end.
    """
    a = np.asarray(angles, float)
    start = int(np.argmin(np.abs(a)))
    pos = [i for i in np.argsort(a) if a[i] > a[start]]
    neg = [i for i in np.argsort(-a) if a[i] < a[start]]
    order = [start]
    while pos or neg:
        for side in (pos, neg):
            order.extend(side[:group])
            del side[:group]
    return np.asarray(order, dtype=int)


def accumulated_dose(angles: Sequence[float], dose_per_tilt: float, group: int = 2) -> np.ndarray:
    """Dose (e/Å²) each tilt (in the order of ``angles``) has received at the middle of its exposure, dose-symmetric."""
    rank = np.empty(len(angles), dtype=int)
    rank[dose_symmetric_order(angles, group)] = np.arange(len(angles))
    return (rank + 0.5) * float(dose_per_tilt)


def detector_width(nz: int, nx: int, angles: Sequence[float]) -> int:
    """Detector pixels needed so that no ray through the volume misses it, at least ``nx``."""
    a = np.radians(np.asarray(angles, float))
    need = np.max(np.abs(np.cos(a)) * nx + np.abs(np.sin(a)) * nz) + 2
    return int(max(nx, int(np.ceil(need / 2)) * 2))


def projection_operator(nz: int, nx: int, angles: Sequence[float], n_det: int) -> sp.csr_matrix:
    """Sparse ``(n_tilts * n_det, nz * nx)`` float32 operator projecting an XZ slice at every tilt."""
    z, x = np.meshgrid(np.arange(nz) - nz // 2, np.arange(nx) - nx // 2, indexing="ij")
    z, x = z.ravel().astype(np.float64), x.ravel().astype(np.float64)
    cols = np.arange(nz * nx)
    rows_all, cols_all, vals_all = [], [], []
    for t, theta in enumerate(np.radians(np.asarray(angles, float))):
        u = x * np.cos(theta) + z * np.sin(theta) + n_det // 2
        i0 = np.floor(u).astype(np.int64)
        f = (u - i0).astype(np.float32)
        for offset, w in ((0, 1.0 - f), (1, f)):
            i = i0 + offset
            ok = (i >= 0) & (i < n_det) & (w > 0)
            rows_all.append(t * n_det + i[ok])
            cols_all.append(cols[ok])
            vals_all.append(w[ok])
    op = sp.coo_matrix(
        (np.concatenate(vals_all), (np.concatenate(rows_all), np.concatenate(cols_all))),
        shape=(len(angles) * n_det, nz * nx),
        dtype=np.float32,
    )
    return op.tocsr()


def project(
    volume: np.ndarray,
    angles: Sequence[float],
    n_det: int | None = None,
    *,
    slab: int = 32,
    progress: bool = False,
    op: sp.csr_matrix | None = None,
) -> np.ndarray:
    """Project a ``[z, y, x]`` volume at every tilt about Y: ``(n_tilts, ny, n_det)`` float32."""
    nz, ny, nx = volume.shape
    n_det = detector_width(nz, nx, angles) if n_det is None else n_det
    if op is None:
        op = projection_operator(nz, nx, angles, n_det)
    out = np.empty((len(angles), ny, n_det), dtype=np.float32)
    for y0 in progress_bar(range(0, ny, slab), desc="project", unit="slab", disable=not progress, leave=False):
        y1 = min(ny, y0 + slab)
        block = np.ascontiguousarray(np.asarray(volume[:, y0:y1, :], dtype=np.float32).transpose(0, 2, 1)).reshape(nz * nx, y1 - y0)
        out[:, y0:y1, :] = (op @ block).reshape(len(angles), n_det, y1 - y0).transpose(0, 2, 1)
    return out


def ramp_filter(projections: np.ndarray) -> np.ndarray:
    """Ram-Lak filter along the detector (last) axis, the discrete form of Kak & Slaney (no DC offset)."""
    n = projections.shape[-1]
    size = max(64, int(2 ** np.ceil(np.log2(2 * n))))
    k = np.concatenate([np.arange(1, size // 2 + 1, 2), np.arange(size // 2 - 1, 0, -2)])
    h = np.zeros(size)
    h[0] = 0.25
    h[1::2] = -1.0 / (np.pi * k) ** 2
    filt = np.real(sfft.rfft(h)).astype(np.float32)
    spec = sfft.rfft(projections, n=size, axis=-1, workers=FFT_WORKERS)
    spec *= filt
    return sfft.irfft(spec, n=size, axis=-1, workers=FFT_WORKERS)[..., :n].astype(np.float32)


def angular_weights(angles: Sequence[float]) -> np.ndarray:
    """Angular spacing (radians) each tilt stands for: half the distance to its neighbours."""
    a = np.radians(np.sort(np.asarray(angles, float)))
    if len(a) == 1:
        return np.array([np.pi])
    edges = np.concatenate([[a[0] - (a[1] - a[0]) / 2], (a[1:] + a[:-1]) / 2, [a[-1] + (a[-1] - a[-2]) / 2]])
    w = np.diff(edges)
    order = np.argsort(np.argsort(np.asarray(angles, float)))
    return w[order]


def backproject(
    projections: np.ndarray,
    angles: Sequence[float],
    nz: int,
    nx: int,
    *,
    out: np.ndarray | None = None,
    add: bool = False,
    filtered: bool = False,
    slab: int = 32,
    progress: bool = False,
    op: sp.csr_matrix | None = None,
) -> np.ndarray:
    """Weighted back-projection of ``(n_tilts, ny, n_det)`` projections into a ``[z, y, x]`` volume.

    Projections are ramp-filtered (unless ``filtered``), weighted by their angular
    spacing and back-projected with the transpose of the projector. With full
    angular coverage (-90..90) this inverts :func:`project`. ``add`` adds into ``out``.
    """
    n_t, ny, n_det = projections.shape
    if op is None:
        op = projection_operator(nz, nx, angles, n_det)
    opt = op.T.tocsr()
    weights = angular_weights(angles).astype(np.float32)[:, None, None]
    if out is None:
        out = np.zeros((nz, ny, nx), dtype=np.float32)
    for y0 in progress_bar(range(0, ny, slab), desc="back-project", unit="slab", disable=not progress, leave=False):
        y1 = min(ny, y0 + slab)
        block = projections[:, y0:y1, :]
        block = (block if filtered else ramp_filter(block)) * weights
        block = np.ascontiguousarray(block.transpose(0, 2, 1)).reshape(n_t * n_det, y1 - y0)
        rec = (opt @ block).reshape(nz, nx, y1 - y0).transpose(0, 2, 1)
        if add:
            out[:, y0:y1, :] += rec
        else:
            out[:, y0:y1, :] = rec
    return out
