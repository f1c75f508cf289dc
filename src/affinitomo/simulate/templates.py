"""Simulation from a folder of template maps (any voxel size and box): the realistic path.

The particles are rendered from the maps; the templates written for the known classes come from
the ``template_source``:

- ``same``: the maps themselves (template matching's best case);
- ``lowpass-bfactor``: the maps low-passed by a B-factor, ``exp(-B k^2 / 4)`` on the amplitudes
  (:func:`bfactor_lowpass`), as a reference map of lower resolution than the molecule;
- ``pdb``: densities computed from the atomic models of a folder (file stem = map stem) with a
  model of their own, a Gaussian per heavy atom weighted by its atomic number at twice the voxel
  size's resolution (:func:`affinitomo.io.structures.simulate_model`), set into the map's box with
  its centre of mass on the map's and scaled to the map's total density (:func:`model_template`).
  A known class without a model keeps its map (a warning says which).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.ndimage import affine_transform, center_of_mass, gaussian_filter, shift

from affinitomo.errors import InputError
from affinitomo.io.volumes import MRC_SUFFIXES, open_volume, read_volume
from affinitomo.simulate.dataset import SimClass, simulate_dataset
from affinitomo.simulate.imaging import Imaging
from affinitomo.simulate.realism import Realism
from affinitomo.simulate.tomogram import paste

log = logging.getLogger(__name__)

TEMPLATE_SOURCES = ("same", "lowpass-bfactor", "pdb")
DEFAULT_TEMPLATE_BFACTOR = 1600.0  # Å²: amplitude 1/e at 20 Å, a reference of about that resolution


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


def bfactor_lowpass(volume: np.ndarray, voxel_size: float, bfactor: float) -> np.ndarray:
    """``volume`` with its Fourier amplitudes times ``exp(-bfactor k^2 / 4)`` (k in 1/Å), float32."""
    n = volume.shape
    k2 = sum(np.square(f) for f in np.meshgrid(np.fft.fftfreq(n[0], voxel_size), np.fft.fftfreq(n[1], voxel_size),
                                                  np.fft.rfftfreq(n[2], voxel_size), indexing="ij", sparse=True))
    spec = np.fft.rfftn(volume.astype(np.float64)) * np.exp(-bfactor * k2 / 4)
    return np.fft.irfftn(spec, s=n).astype(np.float32)


def model_template(model: str | Path, like: np.ndarray, voxel_size: float) -> np.ndarray:
    """The density of an atomic model (:func:`simulate_model`) in the box of the map ``like``.

    Its centre of mass lands on the map's (linear interpolation), negative interpolation
    residue is clipped, and it is scaled to the map's total density.
    """
    from affinitomo.io.structures import simulate_model

    density = simulate_model(model, 2 * voxel_size, voxel_size).density
    cube = np.zeros_like(like, dtype=np.float32)
    paste(cube, density, (like.shape[0] // 2,) * 3)
    offset = np.array(center_of_mass(np.clip(like, 0, None))) - np.array(center_of_mass(cube))
    cube = shift(cube, offset, order=1, mode="constant")
    np.maximum(cube, 0, out=cube)
    return (cube * (float(like.sum(dtype=np.float64)) / float(cube.sum(dtype=np.float64)))).astype(np.float32)


def model_files(folder: str | Path) -> dict[str, Path]:
    """The atomic models (.pdb, .cif, ...) in ``folder`` by file stem; :class:`InputError` when there are none."""
    from affinitomo.io.structures import MODEL_SUFFIXES

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, None, "a folder of atomic models (.pdb, .cif)")
    files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in MODEL_SUFFIXES and not p.name.startswith(".")}
    if not files:
        raise InputError(folder, None, "at least one atomic model (.pdb, .cif)")
    return files


def reference_templates(
    maps: dict[str, np.ndarray], names: Sequence[str], source: str, voxel_size: float, *, bfactor: float = DEFAULT_TEMPLATE_BFACTOR, pdb: str | Path | None = None
) -> tuple[dict[str, np.ndarray | None], dict[str, str]]:
    """The templates of ``names`` from ``source`` (module docstring), None where it is the map itself; and each one's origin."""
    if source not in TEMPLATE_SOURCES:
        raise InputError(None, "template-source", f"one of {', '.join(TEMPLATE_SOURCES)}, got {source!r}")
    if source == "same":
        return {n: None for n in names}, {n: "map" for n in names}
    if source == "lowpass-bfactor":
        if not (np.isfinite(bfactor) and bfactor > 0):
            raise InputError(None, "template-bfactor", f"a positive B-factor in Å², got {bfactor}")
        return {n: bfactor_lowpass(maps[n], voxel_size, bfactor) for n in names}, {n: f"map, B {bfactor:g} Å²" for n in names}
    if pdb is None:
        raise InputError(None, "pdb", "a folder of atomic models (--pdb) for --template-source pdb")
    models = model_files(pdb)
    out, origin = {}, {}
    for n in names:
        if n in models:
            out[n], origin[n] = model_template(models[n], maps[n], voxel_size), str(models[n].resolve())
        else:
            out[n], origin[n] = None, "map"
    lacking = [n for n in names if n not in models]
    if lacking:
        log.warning("no atomic model in %s for %s: their templates are the maps", pdb, ", ".join(lacking))
    return out, origin


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
    realism: Realism | None = None,
    template_source: str = "same",
    template_bfactor: float = DEFAULT_TEMPLATE_BFACTOR,
    pdb: str | Path | None = None,
) -> dict:
    """Simulate tomograms from template maps (default imaging: tilt series, CTF, dark protein).

    ``per_class`` particles of every template in each of ``n_tomograms`` tomograms;
    ``held_out`` templates appear in the tomograms but get no template file and no labels.
    ``realism`` varies the particles and the tomograms' true defocus
    (:mod:`affinitomo.simulate.realism`); ``template_source`` (with ``template_bfactor`` or
    the model folder ``pdb``) chooses where the written templates come from (module docstring).
    """
    maps = load_templates(templates, voxel_size, template_voxel_size=template_voxel_size)
    unknown = sorted(set(held_out) - set(maps))
    if unknown:
        raise InputError(templates, "held-out", f"template names among {sorted(maps)}, got {unknown}")
    known = [n for n in maps if n not in held_out]
    references, origin = reference_templates(maps, known, template_source, voxel_size, bfactor=template_bfactor, pdb=pdb)
    classes = [SimClass(name, vol, name not in held_out, references.get(name)) for name, vol in maps.items()]
    imaging = imaging or Imaging(mode="tiltseries", contrast="dark")
    source = {"source": template_source, "per_class": origin}
    if template_source == "lowpass-bfactor":
        source["bfactor"] = template_bfactor
    if template_source == "pdb":
        source["pdb"] = str(Path(pdb).resolve())
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
        extra_metadata={"source": str(Path(templates).resolve()), "template_source": source},
        realism=realism,
    )
