"""Small asymmetric test volumes made in code (alignment and regrouping tests)."""

from __future__ import annotations

import numpy as np


def asymmetric_phantom(n: int) -> np.ndarray:
    """Three Gaussian lobes of different sizes at asymmetric positions (no rotational symmetry)."""
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    vol = np.zeros((n, n, n))
    for (cz, cy, cx), s, a in (((0, 0, 0), 3.0, 1.0), ((5, 1, 0), 2.0, 0.8), ((-1, 6, 2), 1.5, 0.6),
                               ((-2, -2, -6), 1.8, 0.7)):
        vol += a * np.exp(-((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / (2 * s ** 2))
    return vol


def rod_phantom(n: int) -> np.ndarray:
    """A bent rod with a knob: another shape than :func:`asymmetric_phantom`, of similar size."""
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    vol = np.zeros((n, n, n))
    for t in np.linspace(-7, 7, 15):
        vol += 0.4 * np.exp(-((z - t) ** 2 + (y - 0.05 * t * t) ** 2 + x ** 2) / (2 * 1.6 ** 2))
    return vol + 0.9 * np.exp(-((z - 6) ** 2 + (y - 2) ** 2 + (x - 4) ** 2) / (2 * 2.0 ** 2))
