"""Simulation from a folder of template maps (any voxel size and box): the realistic path."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.ndimage import affine_transform, gaussian_filter

from affinitomo.errors import InputError
from affinitomo.io.volumes import MRC_SUFFIXES, open_volume, read_volume
from affinitomo.simulate.dataset import SimClass, simulate_dataset
from affinitomo.simulate.imaging import Imaging
from affinitomo.simulate.tomogram import paste

log = logging.getLogger(__name__)


def to_cube(volume: np.ndarray) -> np.ndarray:
    """Pad a ``[z, y, x]`` volume to a cube of its largest side, keeping index ``N//2`` on ``M//2``."""
    m = max(volume.shape)
    if all(s == m for s in volume.shape):
        return volume
    cube = np.zeros((m, m, m), dtype=np.float32)
    paste(cube, volume.astype(np.float32), (m // 2,) * 3)
    return cube


def resample(volume: np.ndarray, voxel_size_in: float, voxel_size_out: float) -> np.ndarray:
    """Resample a cubic map to another voxel size, keeping the physical centre (index ``N//2``) fixed.

    Output box: ``ceil(N * in / out)`` rounded up to even. Cubic-spline
    interpolation, with a Gaussian anti-alias pre-filter when the voxel grows
    (sigma = (factor - 1) / 2 input voxels, as scikit-image's ``rescale``).
    """
    volume = np.asarray(volume, dtype=np.float32)
    if abs(voxel_size_in - voxel_size_out) < 1e-6 * voxel_size_out:
        return volume.copy()
    factor = voxel_size_out / voxel_size_in  # input voxels per output voxel
    n_in = volume.shape[0]
    n_out = int(np.ceil(n_in / factor))
    n_out += n_out % 2
    if factor > 1:
        volume = gaussian_filter(volume, (factor - 1) / 2, mode="constant")
    c_in, c_out = n_in // 2, n_out // 2
    offset = c_in - factor * c_out
    return affine_transform(volume, np.full(3, factor), offset=offset, output_shape=(n_out,) * 3, order=3, mode="constant", output=np.float32)


def template_files(folder: str | Path) -> list[Path]:
    """The MRC maps in ``folder``, sorted; :class:`InputError` when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, None, "a folder of template maps (.mrc)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MRC_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputError(folder, None, f"at least one template map ({', '.join(sorted(MRC_SUFFIXES))})")
    return files


def templates_voxel_size(folder: str | Path, template_voxel_size: float | None = None) -> float:
    """The voxel size (Å) the maps in ``folder`` share, from their headers (or ``template_voxel_size``)."""
    if template_voxel_size is not None:
        return float(template_voxel_size)
    sizes = {}
    for path in template_files(folder):
        data, vs = open_volume(path)
        del data
        if vs is None:
            raise InputError(path, "voxel size", "a voxel size in the MRC header, or a voxel size given explicitly (--voxel-size)")
        sizes[path.name] = float(vs)
    values = sorted(set(round(v, 4) for v in sizes.values()))
    if len(values) > 1:
        raise InputError(folder, "voxel size", f"one voxel size for all maps, or one given explicitly (--voxel-size); headers say {sizes}")
    return values[0]


def load_templates(
    folder: str | Path, voxel_size: float, *, template_voxel_size: float | None = None
) -> dict[str, np.ndarray]:
    """Every MRC map in ``folder`` (name = file stem), resampled to ``voxel_size`` Å, as cubes.

    The maps' voxel size comes from their headers, or ``template_voxel_size`` when
    given. Protein density must be positive (bright).
    """
    files = template_files(folder)
    out: dict[str, np.ndarray] = {}
    for path in files:
        data, vs = read_volume(path, template_voxel_size)
        if vs is None:
            raise InputError(path, "voxel size", "a voxel size in the MRC header, or --template-voxel-size")
        if data.shape[0] < 2 or data.ndim != 3:
            raise InputError(path, "shape", f"a 3D map, got shape {data.shape}")
        if not np.all(np.isfinite(data)):
            raise InputError(path, "data", "finite density values (found NaN or inf)")
        if float(data.max()) <= 0 or abs(float(data.min())) > float(data.max()):
            raise InputError(path, "density", "protein density positive (bright); this map's strongest values are negative: invert it")
        vol = resample(to_cube(data), vs, voxel_size)
        np.maximum(vol, 0, out=vol)  # spline overshoot around sharp edges
        out[path.stem] = vol
        log.debug("template %s: %s at %.3g Å -> %s at %.3g Å", path.stem, data.shape, vs, vol.shape, voxel_size)
    return out


def simulate_from_templates(
    templates: str | Path,
    out: str | Path,
    *,
    per_class: int,
    shape: Sequence[int],
    voxel_size: float = 10.0,
    n_tomograms: int = 1,
    held_out: Sequence[str] = (),
    labelled_fraction: float = 0.5,
    imaging: Imaging | None = None,
    template_voxel_size: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Simulate tomograms from template maps (default imaging: tilt series, CTF, dark protein).

    ``per_class`` particles of every template in each of ``n_tomograms`` tomograms;
    ``held_out`` templates appear in the tomograms but get no template file and no labels.
    """
    maps = load_templates(templates, voxel_size, template_voxel_size=template_voxel_size)
    unknown = sorted(set(held_out) - set(maps))
    if unknown:
        raise InputError(templates, "held-out", f"template names among {sorted(maps)}, got {unknown}")
    classes = [SimClass(name, vol, name not in held_out) for name, vol in maps.items()]
    imaging = imaging or Imaging(mode="tiltseries", contrast="dark")
    return simulate_dataset(
        out,
        classes,
        shape=shape,
        per_class=per_class,
        n_tomograms=n_tomograms,
        voxel_size=voxel_size,
        imaging=imaging,
        labelled_fraction=labelled_fraction,
        seed=seed,
        progress=progress,
        extra_metadata={"source": str(Path(templates).resolve())},
    )
