"""Building a tomogram: pasting rotated templates, the Fourier-space missing wedge, noise to an SNR.

The missing wedge follows the convention of :mod:`affinitomo.density.wedge`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import fft as sfft

from affinitomo.density.wedge import FFT_WORKERS, measured_fraction, wedge_mask
from affinitomo.geometry import rotate_volume
from affinitomo.progress import progress_bar
from affinitomo.simulate.placement import Placement


def paste(volume: np.ndarray, box: np.ndarray, centre: Sequence[int]) -> None:
    """Add ``box`` into ``volume`` so that box index ``N//2`` lands on ``centre`` ([z, y, x]); clipped at edges."""
    start = np.asarray(centre, int) - np.array(box.shape) // 2
    lo = np.maximum(start, 0)
    hi = np.minimum(start + np.array(box.shape), volume.shape)
    if np.any(hi <= lo):
        return
    src = tuple(slice(l - s, h - s) for l, h, s in zip(lo, hi, start))
    dst = tuple(slice(l, h) for l, h in zip(lo, hi))
    volume[dst] += box[src]


def cut(volume: np.ndarray, centre: Sequence[int], box: int) -> np.ndarray:
    """The ``box``-sized cube of ``volume`` whose index ``box//2`` is ``centre`` (zero outside the volume)."""
    out = np.zeros((box,) * 3, dtype=np.float32)
    start = np.asarray(centre, int) - box // 2
    lo = np.maximum(start, 0)
    hi = np.minimum(start + box, volume.shape)
    if np.all(hi > lo):
        out[tuple(slice(l - s, h - s) for l, h, s in zip(lo, hi, start))] = volume[tuple(slice(l, h) for l, h in zip(lo, hi))]
    return out


def render_particles(
    shape: Sequence[int],
    templates: Sequence[np.ndarray],
    placement: Placement,
    *,
    order: int = 1,
    progress: bool = False,
    density: Callable[[int, np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Noise-free volume: each class template rotated by its particle's pose A and added at its centre.

    ``density(i, template)``, when given, is particle ``i``'s own density in the reference frame
    (same box as its template), e.g. :class:`affinitomo.simulate.realism.ParticleVariation`.
    """
    volume = np.zeros(tuple(shape), dtype=np.float32)
    it = range(len(placement))
    for i in progress_bar(it, desc="particles", unit="particle", disable=not progress, leave=False):
        template = templates[placement.class_index[i]]
        if density is not None:
            template = density(i, template)
        paste(volume, rotate_volume(template, placement.matrices[i], order=order), placement.centres[i])
    return volume


def box_mask(shape: Sequence[int], placement: Placement, box_sizes: Sequence[int]) -> np.ndarray:
    """Boolean mask of the union of every particle's template box (clipped at the edges)."""
    mask = np.zeros(tuple(shape), dtype=bool)
    for c, centre in zip(placement.class_index, placement.centres):
        b = int(box_sizes[c])
        start = np.maximum(centre - b // 2, 0)
        stop = np.minimum(centre - b // 2 + b, shape)
        mask[tuple(slice(a, z) for a, z in zip(start, stop))] = True
    return mask


def wedge_tomogram(
    clean: np.ndarray,
    mask_boxes: np.ndarray,
    snr: float | None,
    rng: np.random.Generator,
    tilt_min: float = -60.0,
    tilt_max: float = 60.0,
) -> tuple[np.ndarray, dict]:
    """Missing wedge plus Gaussian noise (itself wedge-filtered, as in a reconstruction) at a target SNR.

    SNR = var(signal) / var(noise) over the voxels of ``mask_boxes``, where signal
    is the wedge-filtered noise-free volume. Returns the tomogram and figures.
    """
    shape = clean.shape
    mask = wedge_mask(shape, tilt_min, tilt_max)
    spec = sfft.rfftn(clean, workers=FFT_WORKERS)
    spec *= mask
    signal = sfft.irfftn(spec, s=shape, workers=FFT_WORKERS).astype(np.float32)
    del spec
    var_signal = float(signal[mask_boxes].var())
    info = {"var_signal": var_signal, "snr_target": snr}
    if snr is None or snr <= 0 or not np.isfinite(snr):
        info.update(noise_sigma=0.0, snr_achieved=float("inf"))
        return signal, info
    kept = measured_fraction(shape, mask)
    sigma = float(np.sqrt(var_signal / (snr * kept)))
    noise = rng.standard_normal(shape, dtype=np.float32)
    nspec = sfft.rfftn(noise, workers=FFT_WORKERS)
    del noise
    nspec *= mask * np.float32(sigma)
    noise = sfft.irfftn(nspec, s=shape, workers=FFT_WORKERS).astype(np.float32)
    del nspec
    var_noise = float(noise[mask_boxes].var())
    signal += noise
    info.update(noise_sigma=sigma, var_noise=var_noise, snr_achieved=var_signal / var_noise)
    return signal, info
