"""Departures of a simulated specimen from its ideal maps: per-particle variability, per-tomogram focus.

A data set rendered from the very maps it hands over as templates is template matching's best case.
These knobs make the particles differ from the templates as real ones do. Each is off by default, and
off leaves the simulation exactly as it is without it: no random numbers are drawn for it.

Per particle, in the reference frame (before the particle's pose is applied), in this order:

- deformation (``deform_rms_A`` > 0): a smooth random divergence-free displacement field (the curl
  of white noise smoothed by a Gaussian of ``deform_length_A``, its correlation length), scaled so
  that the RMS length of the displacement over the particle's support (voxels above
  ``SUPPORT_FRACTION`` of the map's maximum, as :func:`affinitomo.simulate.phantoms.bounding_radius`)
  is ``deform_rms_A``; the density is resampled through it (linear interpolation):
  ``out(p) = in(p - d(p))``. Divergence-free, it bends and twists the particle without compressing it.
- missing subunit (probability ``missing_fraction``): the density times ``1 - ball``, a soft ball of
  radius ``missing_scale`` x the particle's bounding radius, centred inside the particle at
  ``MISSING_DEPTH`` of its surface radius along a random direction.
- bound partner (probability ``partner_fraction``): the union (voxel maximum) with a soft ball of
  radius ``partner_scale`` x the bounding radius at the median density of the support, centred outside
  the surface along a random direction so that it overlaps the particle by ``PARTNER_OVERLAP`` of its
  radius, and kept inside the box.
- occupancy (``occupancy_min``, ``occupancy_max`` not both 1): the density times a factor uniform in
  ``[occupancy_min, occupancy_max]``.

Per tomogram (``defocus_spread_um`` > 0): the true defocus is the stated one plus a Gaussian of that
standard deviation (at least ``MIN_DEFOCUS_FRACTION`` of the stated value). The stated value is what
the imaging settings, simulation.json's ``imaging`` and every downstream stage see; the true one is
written to simulation.json's tomogram entries and to truth.star (``afmTrueDefocusUm``).

Randomness: every knob draws from its own stream, keyed by the tomogram's seed sequence, the knob and
(per particle) the particle's index, so a knob's draws do not depend on which other knobs are on, and
the placement, poses and noise (the tomogram's own stream) do not depend on any knob.

SNR: the target SNR is met by the particles as simulated (occupancy and missing density lower the
signal variance the noise level is calibrated on), as the SNR of real data is measured on the
particles it holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.special import erfc

from affinitomo.errors import InputError
from affinitomo.simulate.phantoms import bounding_radius

SUPPORT_FRACTION = 0.05  # of the map's maximum: the particle's support (as bounding_radius)
MISSING_DEPTH = 0.6  # centre of the missing region, as a fraction of the surface radius
PARTNER_OVERLAP = 0.3  # of the partner's radius, inside the particle's surface
EDGE_WIDTH = 1.0  # voxels: the soft edge (Gaussian sigma) of partner and missing balls
MIN_DEFOCUS_FRACTION = 0.1  # a true defocus is at least this fraction of the stated one
#: Stream keys of the knobs (see :func:`stream`).
KEY_DEFORM, KEY_MISSING, KEY_PARTNER, KEY_OCCUPANCY, KEY_DEFOCUS = 1, 2, 3, 4, 5


@dataclass
class Realism:
    """Per-particle and per-tomogram departures from the ideal specimen (module docstring); all off by default."""

    deform_rms_A: float = 0.0  # RMS displacement over the particle's support, Å
    deform_length_A: float = 40.0  # correlation length (Gaussian sigma) of the displacement field, Å
    occupancy_min: float = 1.0  # density scale per particle, uniform in [min, max]
    occupancy_max: float = 1.0
    partner_fraction: float = 0.0  # probability that a particle carries a bound partner
    partner_scale: float = 0.4  # partner radius / particle bounding radius
    missing_fraction: float = 0.0  # probability that a particle misses a subunit
    missing_scale: float = 0.4  # missing region's radius / particle bounding radius
    defocus_spread_um: float = 0.0  # SD of the true defocus around the stated one, µm

    def validate(self) -> None:
        """Raise :class:`InputError` on a setting that cannot work."""
        checks = [
            (np.isfinite(self.deform_rms_A) and self.deform_rms_A >= 0, "deform-rms-A", "a non-negative RMS displacement in Å"),
            (np.isfinite(self.deform_length_A) and self.deform_length_A > 0, "deform-length-A", "a positive correlation length in Å"),
            (0 <= self.occupancy_min <= self.occupancy_max, "occupancy-min/occupancy-max", "0 <= occupancy_min <= occupancy_max"),
            (np.isfinite(self.occupancy_max), "occupancy-max", "a finite occupancy"),
            (0 <= self.partner_fraction <= 1, "partner-fraction", "a fraction in [0, 1]"),
            (0 < self.partner_scale <= 1, "partner-scale", "a radius fraction in (0, 1]"),
            (0 <= self.missing_fraction <= 1, "missing-fraction", "a fraction in [0, 1]"),
            (0 < self.missing_scale <= 1, "missing-scale", "a radius fraction in (0, 1]"),
            (np.isfinite(self.defocus_spread_um) and self.defocus_spread_um >= 0, "defocus-spread-um", "a non-negative spread in µm"),
        ]
        for ok, field, expected in checks:
            if not ok:
                raise InputError(None, field, expected)

    @property
    def occupancy(self) -> bool:
        return not (self.occupancy_min == 1.0 and self.occupancy_max == 1.0)

    @property
    def per_particle(self) -> bool:
        """Whether any knob changes the particles' densities."""
        return self.deform_rms_A > 0 or self.occupancy or self.partner_fraction > 0 or self.missing_fraction > 0

    def as_dict(self) -> dict:
        return asdict(self)


def stream(ss: np.random.SeedSequence, *key: int) -> np.random.Generator:
    """A generator of its own for ``key`` under ``ss`` (the tomogram's seed sequence), independent of ``ss``'s."""
    return np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, *key)))


def true_defocus(stated_um: float, spread_um: float, ss: np.random.SeedSequence) -> float:
    """One tomogram's true defocus: the stated one plus Gaussian ``spread_um``, at least a tenth of it."""
    value = stated_um + spread_um * float(stream(ss, KEY_DEFOCUS).standard_normal())
    return max(value, MIN_DEFOCUS_FRACTION * stated_um)


def support(template: np.ndarray) -> np.ndarray:
    """The particle's voxels: density above ``SUPPORT_FRACTION`` of the maximum."""
    return template > SUPPORT_FRACTION * float(template.max())


def random_direction(rng: np.random.Generator) -> np.ndarray:
    """A unit vector uniform on the sphere (array axes z, y, x)."""
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def displacement_field(template: np.ndarray, rms_voxels: float, length_voxels: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random divergence-free displacement field ``(3, N, N, N)`` (voxels, axes z, y, x).

    The curl of a random vector potential (white noise smoothed by a Gaussian of
    ``length_voxels``), so the particle bends and twists without compressing (its mass and
    density are kept to first order in the strain), scaled to RMS length ``rms_voxels``
    over the support of ``template``.
    """
    potential = rng.standard_normal((3, *template.shape), dtype=np.float32)
    for axis in range(3):
        potential[axis] = gaussian_filter(potential[axis], length_voxels, mode="wrap")
    grad = [np.gradient(potential[k]) for k in range(3)]  # grad[k][j] = d A_k / d axis j
    field = np.stack([grad[(i + 2) % 3][(i + 1) % 3] - grad[(i + 1) % 3][(i + 2) % 3] for i in range(3)])
    inside = support(template)
    rms = float(np.sqrt((field[:, inside] ** 2).sum(axis=0).mean()))
    field *= np.float32(rms_voxels / rms)
    return field


def warp(volume: np.ndarray, field: np.ndarray) -> np.ndarray:
    """``volume`` moved by ``field``: ``out(p) = volume(p - field(p))``, linear interpolation, zero outside."""
    coords = np.indices(volume.shape, dtype=np.float32) - field
    return map_coordinates(volume, coords, order=1, mode="constant", output=np.float32)


def surface_radius(template: np.ndarray, direction: np.ndarray, step: float = 0.5) -> float:
    """Distance (voxels) from the box centre ``N//2`` to the outermost support voxel along ``direction``."""
    t = np.arange(0.0, template.shape[0] / 2, step)
    points = (np.array(template.shape) // 2)[:, None] + direction[:, None] * t[None, :]
    values = map_coordinates(template, points, order=1, mode="constant")
    above = np.flatnonzero(values > SUPPORT_FRACTION * float(template.max()))
    return float(t[above[-1]]) if len(above) else 0.0


def soft_ball(shape: Sequence[int], centre: np.ndarray, radius: float, width: float = EDGE_WIDTH) -> np.ndarray:
    """A ball of ``radius`` voxels at ``centre`` (z, y, x) with an error-function edge of ``width``: 1 inside, 0 outside."""
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    d = np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, centre)))
    return (0.5 * erfc((d - radius) / (np.sqrt(2) * width))).astype(np.float32)


class ParticleVariation:
    """The densities of one tomogram's particles under :class:`Realism`, and what each particle got.

    Called as ``variation(i, template)`` by :func:`affinitomo.simulate.tomogram.render_particles`
    for particle ``i`` (of class ``class_index[i]``); :meth:`columns` gives the truth columns.
    """

    def __init__(self, templates: Sequence[np.ndarray], class_index: np.ndarray, realism: Realism, voxel_size: float, ss: np.random.SeedSequence):
        self.realism, self.voxel_size, self.ss = realism, float(voxel_size), ss
        self.class_index = np.asarray(class_index)
        self.radius = [bounding_radius(t) for t in templates]
        self.level = [float(np.median(t[support(t)])) for t in templates]
        n = len(self.class_index)
        self.records: dict[str, np.ndarray] = {}
        if realism.occupancy:
            self.records["afmOccupancy"] = np.ones(n)
        if realism.partner_fraction > 0:
            self.records["afmPartnerMass"] = np.zeros(n)
        if realism.missing_fraction > 0:
            self.records["afmMissingMass"] = np.zeros(n)

    def __call__(self, i: int, template: np.ndarray) -> np.ndarray:
        r, c = self.realism, int(self.class_index[i])
        density = template
        mass = float(template.sum(dtype=np.float64))
        if r.deform_rms_A > 0:
            rng = stream(self.ss, KEY_DEFORM, i)
            field = displacement_field(template, r.deform_rms_A / self.voxel_size, r.deform_length_A / self.voxel_size, rng)
            density = warp(density, field)
        if r.missing_fraction > 0:
            rng = stream(self.ss, KEY_MISSING, i)
            if rng.random() < r.missing_fraction:
                u = random_direction(rng)
                centre = np.array(template.shape) // 2 + MISSING_DEPTH * surface_radius(template, u) * u
                before = float(density.sum(dtype=np.float64))
                density = density * (1 - soft_ball(template.shape, centre, r.missing_scale * self.radius[c]))
                self.records["afmMissingMass"][i] = (before - float(density.sum(dtype=np.float64))) / mass
        if r.partner_fraction > 0:
            rng = stream(self.ss, KEY_PARTNER, i)
            if rng.random() < r.partner_fraction:
                u = random_direction(rng)
                radius = r.partner_scale * self.radius[c]
                reach = min(surface_radius(template, u) + (1 - PARTNER_OVERLAP) * radius, template.shape[0] / 2 - radius - 2 * EDGE_WIDTH)
                ball = soft_ball(template.shape, np.array(template.shape) // 2 + reach * u, radius)
                before = float(density.sum(dtype=np.float64))
                density = np.maximum(density, np.float32(self.level[c]) * ball)
                self.records["afmPartnerMass"][i] = (float(density.sum(dtype=np.float64)) - before) / mass
        if r.occupancy:
            rng = stream(self.ss, KEY_OCCUPANCY, i)
            scale = float(rng.uniform(r.occupancy_min, r.occupancy_max))
            density = density * np.float32(scale)
            self.records["afmOccupancy"][i] = scale
        return density

    def columns(self) -> dict[str, np.ndarray]:
        """Truth columns of the knobs that are on (particle order of the placement)."""
        return dict(self.records)
