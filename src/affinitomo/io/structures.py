"""Structures as files: MRC density maps and atomic models (PDB/mmCIF) read onto a grid."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from affinitomo.errors import InputError
from affinitomo.io.volumes import MRC_SUFFIXES, read_volume


MODEL_SUFFIXES = {".pdb", ".ent", ".cif", ".mmcif"}

#: Gaussian width of simulated atoms as a fraction of the resolution (Chimera ``molmap``).
SIGMA_PER_RESOLUTION = 0.225


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
