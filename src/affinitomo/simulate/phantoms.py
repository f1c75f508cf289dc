"""Procedural pseudo-proteins: smooth densities built from balls, tubes and shells.

Every phantom is a list of primitives in nanometres, centred on its centre of
mass, rendered into a cubic box (centre at ``N // 2``, as RELION) at any voxel
size. Density is a soft occupancy in [0, 1] (union of primitives) low-passed by
a Gaussian, so it is positive, smooth and about uniform inside, like a protein.

The demo set (``demo_phantoms``) spans 5-25 nm and several symmetries: cyclic
rings (C6 and a deliberately similar C7), a dihedral stack (D4), a barrel (C10),
a dumbbell, a three-legged tripod (C3), a spherical shell, and three
asymmetric shapes (two L-shapes differing in one arm, an irregular globule).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

EDGE_WIDTH_NM = 0.4  # width of the soft edge of each primitive
LOWPASS_SIGMA_NM = 0.8  # final Gaussian low-pass


@dataclass(frozen=True)
class Tube:
    """A capsule: all points within ``radius`` of the segment p0-p1 (nm, x/y/z). A ball if p0 == p1."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    radius: float

    def distance(self, pts: np.ndarray) -> np.ndarray:
        """Signed distance (nm) of points (..., 3) to the capsule surface."""
        a = np.asarray(self.p0, float)
        b = np.asarray(self.p1, float)
        ab = b - a
        denom = float(ab @ ab)
        t = np.zeros(pts.shape[:-1]) if denom == 0 else np.clip(((pts - a) @ ab) / denom, 0.0, 1.0)
        closest = a + t[..., None] * ab
        return np.linalg.norm(pts - closest, axis=-1) - self.radius


@dataclass(frozen=True)
class Shell:
    """A hollow sphere of outer ``radius`` and wall ``thickness`` (nm) around ``centre``."""

    centre: tuple[float, float, float]
    radius: float
    thickness: float

    def distance(self, pts: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(pts - np.asarray(self.centre, float), axis=-1)
        return np.abs(r - (self.radius - self.thickness / 2)) - self.thickness / 2


def ball(centre: tuple[float, float, float], radius: float) -> Tube:
    return Tube(centre, centre, radius)


Primitive = Tube | Shell


@dataclass(frozen=True)
class Phantom:
    """A named pseudo-protein: primitives (nm) and a description of its symmetry."""

    name: str
    primitives: tuple[Primitive, ...]
    symmetry: str
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


def _occupancy(primitives: tuple[Primitive, ...], pts: np.ndarray) -> np.ndarray:
    occ = np.zeros(pts.shape[:-1], dtype=np.float64)
    for prim in primitives:
        d = prim.distance(pts)
        np.maximum(occ, 0.5 * (1.0 - np.tanh(d / EDGE_WIDTH_NM)), out=occ)
    return occ


def _grid(box: int, voxel_size_nm: float) -> np.ndarray:
    """Points (box, box, box, 3) as (x, y, z) nm relative to the box centre N//2, array order [z, y, x]."""
    idx = (np.arange(box) - box // 2) * voxel_size_nm
    z, y, x = np.meshgrid(idx, idx, idx, indexing="ij")
    return np.stack([x, y, z], axis=-1)


def centre_of_mass_nm(phantom: Phantom, voxel_size_nm: float = 0.8, box_nm: float = 40.0) -> np.ndarray:
    """Centre of mass (x, y, z, nm) of a phantom's occupancy."""
    box = int(np.ceil(box_nm / voxel_size_nm))
    pts = _grid(box, voxel_size_nm)
    occ = _occupancy(phantom.primitives, pts)
    return (pts * occ[..., None]).sum(axis=(0, 1, 2)) / occ.sum()


def render_phantom(phantom: Phantom, box: int = 32, voxel_size: float = 10.0) -> np.ndarray:
    """Render a phantom as a float32 ``[z, y, x]`` box; ``voxel_size`` in Å; density in [0, 1]."""
    vs_nm = voxel_size / 10.0
    pts = _grid(box, vs_nm)
    occ = _occupancy(phantom.primitives, pts)
    vol = gaussian_filter(occ, LOWPASS_SIGMA_NM / vs_nm, mode="constant")
    return vol.astype(np.float32)


def bounding_radius(volume: np.ndarray, fraction: float = 0.05) -> float:
    """Radius (voxels) around the box centre ``N//2`` containing all density above ``fraction`` of the max."""
    vol = np.asarray(volume)
    peak = float(vol.max())
    if peak <= 0:
        return 0.0
    zz, yy, xx = np.nonzero(vol > fraction * peak)
    c = np.array(vol.shape) // 2
    d = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
    return float(d.max()) + 1.0


# ---------------------------------------------------------------- shape builders (nm)


def _centred(name: str, prims: list[Primitive], symmetry: str, description: str, tags: tuple[str, ...] = ()) -> Phantom:
    """Shift primitives so the centre of mass is at the origin."""
    raw = Phantom(name, tuple(prims), symmetry, description, tags)
    com = centre_of_mass_nm(raw)

    def shift(p: Primitive) -> Primitive:
        if isinstance(p, Tube):
            return Tube(tuple(np.subtract(p.p0, com)), tuple(np.subtract(p.p1, com)), p.radius)
        return Shell(tuple(np.subtract(p.centre, com)), p.radius, p.thickness)

    return Phantom(name, tuple(shift(p) for p in prims), symmetry, description, tags)


def ring(name: str, n: int, ring_radius: float, bead_radius: float = 2.2, link_radius: float = 1.3) -> Phantom:
    """C_n ring: n beads on a circle in the xy plane, linked by tubes."""
    ang = 2 * np.pi * np.arange(n) / n
    beads = [(ring_radius * np.cos(a), ring_radius * np.sin(a), 0.0) for a in ang]
    prims: list[Primitive] = [ball(b, bead_radius) for b in beads]
    prims += [Tube(beads[i], beads[(i + 1) % n], link_radius) for i in range(n)]
    # A small bump on top of each bead breaks the mirror plane z=0, so the ring is C_n, not D_n.
    prims += [ball((0.8 * b[0], 0.8 * b[1], 1.9), 1.2) for b in beads]
    return _centred(name, prims, f"C{n}", f"{n}-bead ring, {2 * (ring_radius + bead_radius):.0f} nm across")


def dihedral_stack(name: str = "d4_stack", n: int = 4, ring_radius: float = 4.0, half_height: float = 2.8) -> Phantom:
    """D_n: two n-bead rings stacked along z, related by 2-fold axes in the xy plane, with a central pore."""
    prims: list[Primitive] = []
    for z in (-half_height, half_height):
        ang = 2 * np.pi * np.arange(n) / n
        beads = [(ring_radius * np.cos(a), ring_radius * np.sin(a), z) for a in ang]
        prims += [ball(b, 2.4) for b in beads]
        prims += [Tube(beads[i], beads[(i + 1) % n], 1.4) for i in range(n)]
    return _centred(name, prims, f"D{n}", f"two stacked {n}-bead rings, {2 * (ring_radius + 2.4):.0f} nm across")


def barrel(name: str = "barrel", n_staves: int = 10, radius: float = 5.5, length: float = 16.0) -> Phantom:
    """Hollow barrel of ``n_staves`` tubes along z."""
    ang = 2 * np.pi * np.arange(n_staves) / n_staves
    prims: list[Primitive] = [
        Tube((radius * np.cos(a), radius * np.sin(a), -length / 2), (radius * np.cos(a), radius * np.sin(a), length / 2), 1.4)
        for a in ang
    ]
    return _centred(name, prims, f"D{n_staves}", f"hollow barrel, {2 * radius + 2.8:.0f} nm wide, {length + 2.8:.0f} nm long")


def dumbbell(name: str = "dumbbell", half_length: float = 6.0, head_radius: float = 3.5) -> Phantom:
    """Two balls joined by a rod along z."""
    a, b = (0.0, 0.0, -half_length), (0.0, 0.0, half_length)
    prims: list[Primitive] = [ball(a, head_radius), ball(b, head_radius), Tube(a, b, 1.4)]
    return _centred(name, prims, "Dinf", f"dumbbell, {2 * (half_length + head_radius):.0f} nm long")


def l_shape(name: str, arm_x: float, arm_y: float, radius: float = 1.8) -> Phantom:
    """Asymmetric L: arms along +x and +y of different lengths, a knob above the x-arm's end (chiral)."""
    o, ex, ey = (0.0, 0.0, 0.0), (arm_x, 0.0, 0.0), (0.0, arm_y, 0.0)
    prims: list[Primitive] = [Tube(o, ex, radius), Tube(o, ey, radius), ball((arm_x, 0.0, 1.6), 1.7), ball(o, radius + 0.4)]
    return _centred(name, prims, "C1", f"L-shape, arms {arm_x:.0f} and {arm_y:.0f} nm", ("asymmetric",))


def tripod(name: str = "tripod", leg: float = 8.0, droop_deg: float = 30.0) -> Phantom:
    """C3: a hub with three legs at 120 degrees drooping below the xy plane."""
    d = np.radians(droop_deg)
    prims: list[Primitive] = [ball((0.0, 0.0, 0.0), 3.0)]
    for a in 2 * np.pi * np.arange(3) / 3:
        end = (leg * np.cos(d) * np.cos(a), leg * np.cos(d) * np.sin(a), -leg * np.sin(d))
        prims += [Tube((0.0, 0.0, 0.0), end, 1.6), ball(end, 2.0)]
    return _centred(name, prims, "C3", "three-legged tripod")


def globule(name: str = "globule") -> Phantom:
    """Small irregular protein of four unequal lobes on bent stalks (no symmetry), about 11 nm."""
    lobes = [((0.0, 0.0, 0.0), 2.3), ((4.2, 0.6, 0.0), 1.9), ((-1.2, 3.9, 0.9), 1.6), ((0.8, -0.9, 4.0), 1.3)]
    prims: list[Primitive] = [ball(c, r) for c, r in lobes]
    prims += [Tube(lobes[0][0], c, 1.0) for c, _ in lobes[1:]]
    return _centred(name, prims, "C1", "irregular globule of four unequal lobes", ("asymmetric",))


def shell(name: str = "shell", radius: float = 10.0, thickness: float = 2.2) -> Phantom:
    """Hollow spherical capsid-like shell with six pentamer-like knobs on the octahedral axes."""
    prims: list[Primitive] = [Shell((0.0, 0.0, 0.0), radius, thickness)]
    for axis in np.vstack([np.eye(3), -np.eye(3)]):
        prims.append(ball(tuple(axis * (radius - 0.4)), 1.6))
    return _centred(name, prims, "O", f"hollow shell, {2 * radius:.0f} nm across")


def demo_phantoms() -> list[Phantom]:
    """The demo classes, in class-number order (1-based numbers follow this order)."""
    return list(_demo_phantoms())


@functools.lru_cache(maxsize=1)
def _demo_phantoms() -> tuple[Phantom, ...]:
    return (
        ring("ring_c6", 6, 5.5),
        ring("ring_c7", 7, 6.3),  # deliberately similar to ring_c6
        dihedral_stack("d4_stack"),
        barrel("barrel"),
        dumbbell("dumbbell"),
        l_shape("l_short", 12.0, 7.0),
        l_shape("l_long", 12.0, 11.0),  # differs from l_short in one arm
        tripod("tripod"),
        globule("globule"),
        shell("shell"),
    )


DEFAULT_HELD_OUT = "tripod"  # mid-sized and unlike any other class
