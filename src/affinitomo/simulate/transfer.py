"""The imaging of a tomogram as Fourier filters on one particle box: signal transfer and noise colour.

Both imaging paths of :mod:`affinitomo.simulate.imaging` are linear in the
specimen and (up to interpolation) shift-invariant, and their noise is
stationary, so a box cut from a simulated tomogram is, in distribution,

    box = crop(irfftn(H * rfftn(particle)))  +  sigma * irfftn(A * rfftn(white))

with ``H`` the signal transfer on a padded box and ``A`` the noise amplitude
(square root of the noise power spectrum, scaled to unit variance) on the output
box. This module gives ``H`` and ``A`` for each path:

- ``wedge``: exactly the masks the tomogram path uses: ``H`` is the missing-wedge
  mask, ``A`` the same mask (white noise filtered by the wedge), both in the
  tomogram frame (tilt axis Y).
- ``tiltseries``: measured by running the tomogram path's own code (projection,
  CTF and dose attenuation, ramp-weighted back-projection of
  :mod:`affinitomo.simulate.tiltseries`):
  ``H`` is the mean response to unit impulses at random positions (so that the
  detector interpolation blur is averaged as over a particle's voxels), ``A`` the
  mean periodogram of reconstructed unit projection noise, averaged over ``k_y``
  (Y rows are reconstructed independently, so the noise is white along Y).
  Poisson noise is modelled as Gaussian noise of the same level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from affinitomo.density.wedge import _rfft_weights, wedge_mask
from affinitomo.simulate.imaging import Imaging, apply_tilt_transfer
from affinitomo.simulate.tiltseries import backproject, detector_width, project, projection_operator, tilt_angles

IMPULSES = 8  # impulse responses averaged for the tilt-series signal transfer
NOISE_REALISATIONS = 16  # reconstructed noise volumes averaged for the tilt-series noise spectrum
PAD_FACTOR = 1.5  # the signal is imaged in a box this much larger than the output box, then cropped


@dataclass
class ImagingTransfer:
    """Fourier filters that image one particle box like the tomograms (rFFT grids, ``[z, y, x]``)."""

    signal: np.ndarray  # H on the padded box, broadcastable to (P, P, P // 2 + 1)
    noise: np.ndarray  # A on the output box, broadcastable to (B, B, B // 2 + 1); unit output variance
    pad_box: int
    box: int


def pad_size(box: int) -> int:
    """Even FFT-friendly size of at least ``PAD_FACTOR * box`` (margin for the wedge's and CTF's spread)."""
    n = int(np.ceil(PAD_FACTOR * box))
    while n % 2 or sfft.next_fast_len(n) != n:
        n += 1
    return n


def full_spectrum_mean(values: np.ndarray, n_last: int) -> float:
    """Mean over the full FFT grid of a quantity given on the rFFT grid (last axis ``n_last // 2 + 1``)."""
    w = _rfft_weights(n_last).reshape((1,) * (values.ndim - 1) + (-1,))
    full = np.broadcast_to(values, values.shape[:-1] + (w.shape[-1],))
    count = np.prod(full.shape[:-1]) * n_last
    return float((full * w).sum() / count)


def unit_variance_amplitude(power: np.ndarray, n_last: int) -> np.ndarray:
    """Noise amplitude ``sqrt(power / mean(power))``: unit white noise filtered by it has unit variance."""
    mean = full_spectrum_mean(power, n_last)
    if mean <= 0:
        raise ValueError("noise power spectrum is zero everywhere")
    return np.sqrt(power / mean).astype(np.float32)


def imaging_transfer(imaging: Imaging, voxel_size: float, box: int, rng: np.random.Generator) -> ImagingTransfer:
    """Signal transfer and noise amplitude that image a ``box``-voxel particle like ``imaging``'s tomograms."""
    imaging.validate()
    pad = pad_size(box)
    if imaging.mode == "wedge":
        signal = wedge_mask((pad,) * 3, imaging.tilt_min, imaging.tilt_max)
        noise = unit_variance_amplitude(wedge_mask((box,) * 3, imaging.tilt_min, imaging.tilt_max), box)
    else:
        signal = tiltseries_signal_transfer(imaging, voxel_size, pad, rng)
        noise = unit_variance_amplitude(tiltseries_noise_power(imaging, box, rng), box)
    return ImagingTransfer(signal=signal, noise=noise, pad_box=pad, box=box)


def tiltseries_signal_transfer(imaging: Imaging, voxel_size: float, n: int, rng: np.random.Generator, impulses: int = IMPULSES) -> np.ndarray:
    """Transfer ``H`` (complex64, rFFT grid of an ``n^3`` box) of projection, CTF and WBP, as the tomograms.

    Unit impulses at random voxels of the central XZ plane (within ``n/4`` of the
    centre) go through :func:`project`, :func:`apply_tilt_transfer` and :func:`backproject`;
    the responses, moved back to the centre, are averaged. Scale: as the
    tomogram path (SNR and normalisation make it irrelevant downstream).
    """
    angles = tilt_angles(imaging.tilt_min, imaging.tilt_max, imaging.tilt_step)
    n_det = detector_width(n, n, angles)
    op = projection_operator(n, n, angles, n_det)
    c = n // 2
    response = np.zeros((n, n, n), dtype=np.float64)
    offsets = rng.integers(-(n // 4), n // 4 + 1, size=(impulses, 2))
    for dz, dx in offsets:
        vol = np.zeros((n, n, n), dtype=np.float32)
        vol[c + dz, c, c + dx] = 1.0
        proj = project(vol, angles, n_det, op=op)
        apply_tilt_transfer(proj, imaging, voxel_size)
        rec = backproject(proj, angles, n, n, op=op)
        response += np.roll(rec, (-dz, -dx), axis=(0, 2))
    response /= impulses
    return sfft.rfftn(sfft.ifftshift(response)).astype(np.complex64)


def tiltseries_noise_power(imaging: Imaging, n: int, rng: np.random.Generator, realisations: int = NOISE_REALISATIONS) -> np.ndarray:
    """Power spectrum (rFFT grid, shape ``(n, 1, n // 2 + 1)``) of WBP-reconstructed white projection noise."""
    angles = tilt_angles(imaging.tilt_min, imaging.tilt_max, imaging.tilt_step)
    n_det = detector_width(n, n, angles)
    op = projection_operator(n, n, angles, n_det)
    power = np.zeros((n, n // 2 + 1), dtype=np.float64)
    for _ in range(realisations):
        unit = rng.standard_normal((len(angles), n, n_det), dtype=np.float32)
        rec = backproject(unit, angles, n, n, op=op)
        power += (np.abs(sfft.rfftn(rec)) ** 2).mean(axis=1)
    return (power / realisations)[:, None, :]
