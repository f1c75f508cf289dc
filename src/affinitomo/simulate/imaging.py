"""From a noise-free volume to a tomogram: the fast wedge path and the tilt-series path.

``wedge``: missing wedge applied as a Fourier mask to the volume, Gaussian noise
filtered by the same wedge (as a reconstruction's noise is).

``tiltseries``: projections over the tilt range, a CTF on each projection
(optionally phase-flipped), with ``dose_symmetric`` a radiation-damage attenuation
``exp(-B k^2 / 4)`` per projection whose B grows with the dose accumulated by the middle
of its exposure in a dose-symmetric acquisition (``B = dose_bfactor * accumulated dose``,
:func:`affinitomo.simulate.tiltseries.accumulated_dose`; the default 20 Å²
per e/Å² is about what Grant & Grigorieff's 2015 critical exposure, 39 e/Å² at 20 Å,
gives at 20-40 Å), Gaussian or Poisson noise on the projections (the same level on
every tilt, as the dose per tilt is the same), weighted back-projection.

In both, ``snr`` is measured where users look: var(signal) / var(noise) over the
voxels of the particle boxes of the final tomogram, signal being the noise-free
tomogram through the same imaging. Contrast: the noise-free signal keeps the
templates' positive protein density; ``contrast="dark"`` multiplies the result by
-1 at the end, like a real microscope's phase contrast (dark protein).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
from scipy import fft as sfft

from affinitomo.density.ctf import CtfParameters
from affinitomo.errors import InputError
from affinitomo.simulate.tiltseries import accumulated_dose, backproject, detector_width, project, projection_operator, tilt_angles
from affinitomo.simulate.tomogram import wedge_tomogram

log = logging.getLogger(__name__)

DEFAULT_SNR = 0.2
CALIBRATION_ROWS = 16  # Y rows of unit noise reconstructed to calibrate the noise level


@dataclass
class Imaging:
    """How a noise-free volume becomes a tomogram."""

    mode: str = "wedge"  # "wedge" or "tiltseries"
    tilt_min: float = -60.0
    tilt_max: float = 60.0
    tilt_step: float = 3.0
    snr: float | None = DEFAULT_SNR  # None or 0: no noise
    noise: str = "gaussian"  # "gaussian" or "poisson" (tiltseries only)
    ctf: bool = True  # tiltseries only
    defocus_um: float = 3.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    phase_flip: bool = False
    contrast: str = "bright"  # "bright" (protein positive) or "dark" (x -1, like real data)
    dose_symmetric: bool = False  # tiltseries only: radiation damage growing along a dose-symmetric acquisition
    dose_per_tilt: float = 3.0  # e/Å² per tilt
    dose_bfactor: float = 20.0  # Å² of B-factor per e/Å² of accumulated dose

    def validate(self) -> None:
        """Raise :class:`InputError` on a setting that cannot work."""
        checks = [
            (self.mode in ("wedge", "tiltseries"), "imaging", "'wedge' or 'tiltseries'"),
            (self.noise in ("gaussian", "poisson"), "noise", "'gaussian' or 'poisson'"),
            (self.contrast in ("bright", "dark"), "contrast", "'bright' or 'dark'"),
            (-90 <= self.tilt_min < self.tilt_max <= 90, "tilt-min/tilt-max", "-90 <= tilt_min < tilt_max <= 90 degrees"),
            (self.tilt_step > 0, "tilt-step", "a positive step in degrees"),
            (self.snr is None or (np.isfinite(self.snr) and self.snr >= 0), "snr", "a non-negative finite SNR (0 = no noise)"),
            (not self.dose_symmetric or self.mode == "tiltseries", "dose-symmetric", "the tilt-series imaging (--imaging tiltseries)"),
            (np.isfinite(self.dose_per_tilt) and self.dose_per_tilt > 0, "dose-per-tilt", "a positive dose per tilt in e/Å²"),
            (np.isfinite(self.dose_bfactor) and self.dose_bfactor >= 0, "dose-bfactor", "a non-negative B-factor per e/Å² in Å²"),
        ]
        for ok, field, expected in checks:
            if not ok:
                raise InputError(None, field, expected)
        if self.ctf:
            self.ctf_parameters().validate()

    def ctf_parameters(self) -> CtfParameters:
        """The microscope settings as :class:`CtfParameters` (used in the tilt-series mode with ``ctf``)."""
        return CtfParameters(self.defocus_um, self.voltage_kv, self.cs_mm, self.amplitude_contrast, self.phase_flip)

    def as_dict(self) -> dict:
        return asdict(self)


def image_volume(
    clean: np.ndarray, mask_boxes: np.ndarray, imaging: Imaging, voxel_size: float, rng: np.random.Generator, *, progress: bool = False
) -> tuple[np.ndarray, dict]:
    """Tomogram (float32 ``[z, y, x]``) from a noise-free volume, and the figures of its making."""
    imaging.validate()
    if imaging.mode == "wedge":
        tomo, info = wedge_tomogram(clean, mask_boxes, imaging.snr or None, rng, imaging.tilt_min, imaging.tilt_max)
    else:
        tomo, info = tilt_series_tomogram(clean, mask_boxes, imaging, voxel_size, rng, progress=progress)
    if imaging.contrast == "dark":
        np.negative(tomo, out=tomo)
    return tomo, info


def tilt_bfactors(imaging: Imaging) -> np.ndarray:
    """Radiation-damage B-factor (Å²) of each tilt of ``imaging``'s series (tilt order); zeros without ``dose_symmetric``."""
    angles = tilt_angles(imaging.tilt_min, imaging.tilt_max, imaging.tilt_step)
    if not imaging.dose_symmetric:
        return np.zeros(len(angles))
    return imaging.dose_bfactor * accumulated_dose(angles, imaging.dose_per_tilt)


def apply_tilt_transfer(projections: np.ndarray, imaging: Imaging, pixel_size: float) -> None:
    """Multiply every projection (the tilts of ``imaging``, in order) by its transfer in Fourier space, in place.

    The CTF (with ``imaging.ctf``) and the dose attenuation ``exp(-B_t k^2 / 4)`` (with
    ``imaging.dose_symmetric``, B from :func:`tilt_bfactors`); nothing when neither is on.
    """
    if not (imaging.ctf or imaging.dose_symmetric):
        return
    shape = projections.shape[-2:]
    transfer = imaging.ctf_parameters().image(shape, pixel_size) if imaging.ctf else None
    if imaging.dose_symmetric:
        bfactors = tilt_bfactors(imaging)
        if len(bfactors) != projections.shape[0]:
            raise ValueError(f"{projections.shape[0]} projections for the {len(bfactors)} tilts of the imaging")
        k2 = np.fft.fftfreq(shape[0], d=pixel_size)[:, None] ** 2 + np.fft.rfftfreq(shape[1], d=pixel_size)[None, :] ** 2
    for t in range(projections.shape[0]):
        spec = sfft.rfft2(projections[t], workers=-1)
        if transfer is not None:
            spec *= transfer
        if imaging.dose_symmetric:
            spec *= np.exp(-bfactors[t] * k2 / 4).astype(np.float32)
        projections[t] = sfft.irfft2(spec, s=shape, workers=-1)


def tilt_series_tomogram(
    clean: np.ndarray, mask_boxes: np.ndarray, imaging: Imaging, voxel_size: float, rng: np.random.Generator, *, progress: bool = False
) -> tuple[np.ndarray, dict]:
    """Project, CTF and dose attenuation (:func:`apply_tilt_transfer`), noise on projections to the target tomogram SNR, WBP.

    The noise level is calibrated by reconstructing unit noise for a few Y rows
    (Y rows are independent), then set so that the tomogram reaches ``snr`` in
    the particle boxes; the achieved SNR is measured and returned.
    """
    nz, ny, nx = clean.shape
    angles = tilt_angles(imaging.tilt_min, imaging.tilt_max, imaging.tilt_step)
    n_det = detector_width(nz, nx, angles)
    op = projection_operator(nz, nx, angles, n_det)
    proj = project(clean, angles, n_det, op=op, progress=progress)
    apply_tilt_transfer(proj, imaging, voxel_size)
    tomo = backproject(proj, angles, nz, nx, op=op, progress=progress)
    var_signal = float(tomo[mask_boxes].var())
    info: dict = {"var_signal": var_signal, "snr_target": imaging.snr, "n_tilts": len(angles), "detector_width": n_det}
    if imaging.dose_symmetric:
        info["accumulated_dose"] = [round(float(d), 3) for d in accumulated_dose(angles, imaging.dose_per_tilt)]
    if not imaging.snr:
        info.update(noise_sigma=0.0, snr_achieved=float("inf"))
        return tomo, info
    rows = min(ny, CALIBRATION_ROWS)
    unit = rng.standard_normal((len(angles), rows, n_det), dtype=np.float32)
    var_unit = float(backproject(unit, angles, nz, nx, op=op).var())
    sigma = float(np.sqrt(var_signal / (imaging.snr * var_unit)))
    if imaging.noise == "gaussian":
        noise = rng.standard_normal(proj.shape, dtype=np.float32)
        noise *= np.float32(sigma)
        info["noise_sigma"] = sigma
    else:
        # Counts ~ Poisson(dose * (1 + k * s)): protein modulates the beam by at most 50 %,
        # and the dose per pixel gives the projection noise sigma: var = 1 / (dose * k^2).
        k = 0.5 / max(float(np.abs(proj).max()), 1e-12)
        dose = 1.0 / (k * k * sigma * sigma)
        counts = rng.poisson(dose * np.clip(1.0 + k * proj.astype(np.float64), 0.0, None))
        noise = ((counts / dose - 1.0) / k - proj).astype(np.float32)
        del counts
        info.update(noise_sigma=sigma, dose_per_pixel=dose)
    del proj
    noise_rec = backproject(noise, angles, nz, nx, op=op, progress=progress)
    del noise
    var_noise = float(noise_rec[mask_boxes].var())
    tomo += noise_rec
    info.update(var_noise=var_noise, snr_achieved=var_signal / var_noise)
    log.debug("tilt series: %s", info)
    return tomo, info
