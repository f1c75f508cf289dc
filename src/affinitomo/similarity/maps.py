"""Structures to comparable maps: read MRC maps or atomic models, put them on one grid.

Every map is low-pass filtered at the working resolution (anti-aliasing), resampled to
one voxel size into one cubic box with its centre of mass at the box centre ``N//2``, and
scaled to unit standard deviation (background 0). Protein density is positive.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from affinitomo.errors import InputError
from affinitomo.io.volumes import MRC_SUFFIXES, read_volume

log = logging.getLogger(__name__)

MODEL_SUFFIXES = {".pdb", ".ent", ".cif", ".mmcif"}
#: Gaussian width of simulated atoms as a fraction of the resolution (Chimera ``molmap``).
SIGMA_PER_RESOLUTION = 0.225
#: Fraction of the (positive) density mass inside the particle radius.
RADIUS_MASS_FRACTION = 0.95


@dataclass
class StructureMap:
    """One structure on its own grid: density ``[z, y, x]`` and voxel size (Å)."""

    name: str
    density: np.ndarray
    voxel_size: float
    source: Path


def structure_files(inputs: list[str | Path]) -> list[Path]:
    """Expand folders into their map/model files (sorted); check files exist and stems are unique."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in MRC_SUFFIXES | MODEL_SUFFIXES)
            if not found:
                raise InputError(path, None, "a folder holding density maps (.mrc) or atomic models (.pdb, .cif)")
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in MRC_SUFFIXES | MODEL_SUFFIXES:
                raise InputError(path, "suffix", "a density map (.mrc, .map) or an atomic model (.pdb, .cif)")
            files.append(path)
        else:
            raise InputError(path, None, "file or folder not found")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise InputError(f, "name", f"one structure per class name; '{f.stem}' is also {stems[f.stem]}")
        stems[f.stem] = f
    if len(files) < 1:
        raise InputError(None, "templates", "at least one structure")
    return files


def simulate_model(path: str | Path, resolution: float, voxel_size: float | None = None) -> StructureMap:
    """Density of an atomic model (PDB/mmCIF via gemmi): a Gaussian per heavy atom.

    Each non-hydrogen atom of the first model adds a Gaussian of width
    ``SIGMA_PER_RESOLUTION * resolution`` weighted by its atomic number (waters skipped),
    on a grid of ``voxel_size`` (default ``resolution / 4``).
    """
    import gemmi

    path = Path(path)
    try:
        st = gemmi.read_structure(str(path))
    except Exception as exc:
        raise InputError(path, None, f"a readable PDB/mmCIF model ({exc})") from exc
    st.remove_hydrogens()
    st.remove_waters()
    if len(st) == 0:
        raise InputError(path, "model", "at least one model with atoms")
    xyz, weight = [], []
    for chain in st[0]:
        for residue in chain:
            for atom in residue:
                xyz.append((atom.pos.x, atom.pos.y, atom.pos.z))
                weight.append(max(atom.element.atomic_number, 1) * atom.occ)
    if not xyz:
        raise InputError(path, "atoms", "at least one non-hydrogen atom")
    xyz_a, w = np.asarray(xyz, dtype=float), np.asarray(weight, dtype=float)
    spacing = float(voxel_size) if voxel_size else resolution / 4.0
    sigma = SIGMA_PER_RESOLUTION * resolution / spacing
    lo = xyz_a.min(0) - 4 * sigma * spacing
    n = int(math.ceil(((xyz_a.max(0) + 4 * sigma * spacing) - lo).max() / spacing)) + 1
    idx = (xyz_a - lo) / spacing  # x, y, z voxel coordinates
    grid = np.zeros((n, n, n), dtype=np.float64)
    base = np.floor(idx).astype(int)
    frac = idx - base
    for corner in range(8):  # trilinear splat
        off = np.array([(corner >> k) & 1 for k in range(3)])
        cw = np.prod(np.where(off, frac, 1 - frac), axis=1) * w
        x, y, z = (base + off).T
        keep = (x < n) & (y < n) & (z < n)
        np.add.at(grid, (z[keep], y[keep], x[keep]), cw[keep])
    density = ndimage.gaussian_filter(grid, sigma, mode="constant").astype(np.float32)
    return StructureMap(path.stem, density, spacing, path)


def load_structure(path: str | Path, resolution: float, voxel_size: float | None = None) -> StructureMap:
    """A map from an MRC file (voxel size from the header, or ``voxel_size``) or an atomic model."""
    path = Path(path)
    if path.suffix.lower() in MODEL_SUFFIXES:
        return simulate_model(path, resolution)
    data, vs = read_volume(path, voxel_size)
    if vs is None:
        raise InputError(path, "voxel_size", "a voxel size in the MRC header (or give --voxel-size)")
    if data.ndim != 3 or min(data.shape) < 2:
        raise InputError(path, "shape", f"a 3D map, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise InputError(path, "data", "finite density values")
    if float(data.max() - data.min()) <= 0:
        raise InputError(path, "data", "a map that is not constant")
    return StructureMap(path.stem, data, float(vs), path)


def background(density: np.ndarray) -> float:
    """The background level of a box: the median of its six faces."""
    faces = [density[0], density[-1], density[:, 0], density[:, -1], density[:, :, 0], density[:, :, -1]]
    return float(np.median(np.concatenate([f.ravel() for f in faces])))


def mass_radius(density: np.ndarray, voxel_size: float, centre: np.ndarray | None = None) -> float:
    """Radius (Å) holding ``RADIUS_MASS_FRACTION`` of the positive density above background."""
    w = np.clip(density - background(density), 0, None).astype(np.float64)
    if w.sum() <= 0:
        return voxel_size
    idx = np.indices(density.shape).reshape(3, -1).T
    ww = w.ravel()
    c = (idx * ww[:, None]).sum(0) / ww.sum() if centre is None else np.asarray(centre, float)
    r = np.sqrt(((idx - c) ** 2).sum(1))
    order = np.argsort(r)
    cum = np.cumsum(ww[order]) / ww.sum()
    return float(r[order][np.searchsorted(cum, RADIUS_MASS_FRACTION)] * voxel_size + voxel_size / 2)


def lowpass(density: np.ndarray, voxel_size: float, resolution: float) -> np.ndarray:
    """Soft (Gaussian) low-pass so that the amplitude at 1/resolution is 1/2."""
    # Gaussian transfer exp(-2 pi^2 sigma^2 f^2) = 1/2 at f = 1/resolution.
    sigma_a = resolution * math.sqrt(math.log(2) / 2) / math.pi
    return ndimage.gaussian_filter(density, sigma_a / voxel_size, mode="nearest")


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


def to_common_grid(
    maps: list[StructureMap], resolution: float, voxel_size: float, box: int | None = None, margin: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Resample maps to one cubic box of ``voxel_size``, centred on their centres of mass.

    Returns (stack (n, N, N, N) float32, radii in Å). Each map keeps a zero background (so
    that rotating with zero padding adds no edges) and is scaled to unit standard deviation;
    the scores remove the mean themselves. The box,
    unless given, holds the largest particle's diameter plus ``margin`` times its radius on
    each side (room for shifts without wrap-around).
    """
    prepared, centres, radii = [], [], []
    for m in maps:
        d = lowpass(m.density.astype(np.float32) - background(m.density), m.voxel_size, resolution)
        w = np.clip(d, 0, None).astype(np.float64)
        if w.sum() <= 0:
            raise InputError(m.source, "data", "positive protein density above the background")
        com = np.array(ndimage.center_of_mass(w))
        prepared.append(d)
        centres.append(com)
        radii.append(mass_radius(d, m.voxel_size, com))
    radii_a = np.array(radii)
    if box is None:
        extent = 2 * float(radii_a.max()) * (1 + margin)
        box = fft_size(int(math.ceil(extent / voxel_size)) + 2)
    stack = np.empty((len(maps), box, box, box), dtype=np.float32)
    c_new = np.full(3, box // 2, dtype=float)
    for i, (m, d, com) in enumerate(zip(maps, prepared, centres)):
        scale = voxel_size / m.voxel_size
        matrix = np.full(3, scale)
        offset = com - scale * c_new
        out = ndimage.affine_transform(d, matrix, offset=offset, output_shape=(box,) * 3, order=3, mode="constant", cval=0.0)
        out = out.astype(np.float32)
        std = out.std()
        if std <= 0:
            raise InputError(m.source, "data", "a map with density inside the common box")
        stack[i] = out / std
    return stack, radii_a
