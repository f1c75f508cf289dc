"""Contrast transfer function of a transmission electron microscope (weak-phase approximation).

``CTF(k) = sqrt(1 - A^2) sin(chi(k)) + A cos(chi(k))`` with
``chi(k) = pi * lambda * dF * k^2 - (pi / 2) * Cs * lambda^3 * k^4``, where ``dF`` > 0
is underfocus (Å), ``Cs`` the spherical aberration (Å), ``A`` the amplitude contrast
and ``lambda`` the relativistic electron wavelength (Å). With this sign, low
frequencies pass with positive sign (protein stays bright); real images show the
opposite sign (dark protein): that is applied by the ``contrast`` switch of the
simulator, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affinitomo.errors import InputError

# Physical constants (CODATA): Planck, electron rest mass, elementary charge, speed of light.
_H = 6.62607015e-34
_M0 = 9.1093837015e-31
_E = 1.602176634e-19
_C = 299792458.0


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å for an accelerating voltage in kV (300 kV -> 0.01969 Å)."""
    v = voltage_kv * 1e3
    lam = _H / np.sqrt(2 * _M0 * _E * v * (1 + _E * v / (2 * _M0 * _C**2)))
    return float(lam * 1e10)


def chi(k: np.ndarray, defocus_um: float, voltage_kv: float, cs_mm: float) -> np.ndarray:
    """Phase aberration chi(k) for spatial frequencies ``k`` in 1/Å."""
    lam = electron_wavelength(voltage_kv)
    df = defocus_um * 1e4
    cs = cs_mm * 1e7
    k2 = np.asarray(k, dtype=np.float64) ** 2
    return np.pi * lam * df * k2 - 0.5 * np.pi * cs * lam**3 * k2**2


def ctf(k: np.ndarray, defocus_um: float = 3.0, voltage_kv: float = 300.0, cs_mm: float = 2.7, amplitude_contrast: float = 0.07) -> np.ndarray:
    """CTF value at spatial frequencies ``k`` (1/Å)."""
    c = chi(k, defocus_um, voltage_kv, cs_mm)
    return np.sqrt(1 - amplitude_contrast**2) * np.sin(c) + amplitude_contrast * np.cos(c)


@dataclass(frozen=True)
class CtfParameters:
    """The microscope's CTF: underfocus (µm), voltage (kV), Cs (mm), amplitude contrast, and
    whether the data were phase-flipped (then the tomogram carries ``|CTF|``)."""

    defocus_um: float = 3.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    phase_flip: bool = False

    def validate(self) -> None:
        """Raise :class:`InputError` on a value that cannot be a microscope's."""
        checks = [
            (np.isfinite(self.defocus_um) and self.defocus_um > 0, "defocus-um", "a positive (under)focus in µm"),
            (np.isfinite(self.voltage_kv) and self.voltage_kv > 0, "voltage-kv", "a positive voltage in kV"),
            (np.isfinite(self.cs_mm) and self.cs_mm >= 0, "cs-mm", "a non-negative spherical aberration in mm"),
            (0 <= self.amplitude_contrast < 1, "amplitude-contrast", "a value in [0, 1)"),
        ]
        for ok, field, expected in checks:
            if not ok:
                raise InputError(None, field, expected)

    def transfer(self, k: np.ndarray) -> np.ndarray:
        """The transfer at spatial frequencies ``k`` (1/Å): the CTF, or ``|CTF|`` when phase-flipped (float32)."""
        values = ctf(k, self.defocus_um, self.voltage_kv, self.cs_mm, self.amplitude_contrast)
        return (np.abs(values) if self.phase_flip else values).astype(np.float32)

    def image(self, shape: tuple[int, int], pixel_size: float) -> np.ndarray:
        """The transfer on the rFFT grid (ny, nx//2+1) of a 2D image of ``shape`` with ``pixel_size`` Å."""
        ky = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
        kx = np.fft.rfftfreq(shape[1], d=pixel_size)[None, :]
        return self.transfer(np.sqrt(ky**2 + kx**2))

    def volume(self, n: int, voxel_size: float) -> np.ndarray:
        """The tomogram's 3D transfer on the rFFT grid (n, n, n//2+1) of an n^3 box, ``[z, y, x]``.

        Each tilt's projection carries ``CTF(|k|)`` over its central slice, whose in-plane
        frequencies are the 3D ones, so a weighted back-projection at one defocus has the
        isotropic transfer ``CTF(|k|)`` (the missing wedge aside; defocus gradients across
        the tilt are neglected).
        """
        f = np.fft.fftfreq(n, d=voxel_size)
        fx = np.fft.rfftfreq(n, d=voxel_size)
        return self.transfer(np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + fx[None, None, :] ** 2))


def ctf_zeros(n: int, defocus_um: float = 3.0, voltage_kv: float = 300.0, cs_mm: float = 2.7, amplitude_contrast: float = 0.07) -> np.ndarray:
    """The first ``n`` spatial frequencies (1/Å) where the CTF is zero, solved analytically.

    Zeros satisfy ``chi(k) = m*pi - phi`` with ``phi = atan2(A, sqrt(1 - A^2))``, a
    quadratic in ``k^2``: ``-(pi/2) Cs lam^3 k^4 + pi lam dF k^2 - (m pi - phi) = 0``.
    """
    lam = electron_wavelength(voltage_kv)
    df, cs = defocus_um * 1e4, cs_mm * 1e7
    phi = np.arctan2(amplitude_contrast, np.sqrt(1 - amplitude_contrast**2))
    out = []
    m = 1
    while len(out) < n:
        target = m * np.pi - phi
        if cs == 0:
            k2 = target / (np.pi * lam * df)
        else:
            a, b = -0.5 * np.pi * cs * lam**3, np.pi * lam * df
            disc = b * b + 4 * a * target
            if disc < 0:
                break  # beyond the Scherzer turn-around; no more zeros of this branch
            k2 = (-b + np.sqrt(disc)) / (2 * a)
        out.append(np.sqrt(k2))
        m += 1
    return np.asarray(out)
