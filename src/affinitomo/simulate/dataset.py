"""A simulated data set on disk, in the layout of docs/architecture.md (stage 1, simulate).

``DIR/tomograms/<tomo>.mrc``, ``DIR/truth.star``, ``DIR/particles.star``,
``DIR/templates/<class>.mrc`` (known classes), ``DIR/classes.csv`` and
``DIR/simulation.json`` (the parameters and measured figures). Every file is
written atomically; the tables are written last. The particles can depart from
their class's template (:mod:`affinitomo.simulate.realism`), and a class's written
template can differ from the density its particles are rendered from
(:attr:`SimClass.reference`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from affinitomo import __version__
from affinitomo.errors import InputError
from affinitomo.geometry import matrix_to_euler
from affinitomo.io.atomic import atomic_path
from affinitomo.io.particles import write_particles
from affinitomo.io.volumes import write_volume
from affinitomo.simulate.imaging import Imaging, image_volume
from affinitomo.simulate.phantoms import bounding_radius
from affinitomo.simulate.placement import Placement, place_particles
from affinitomo.simulate.realism import ParticleVariation, Realism, true_defocus
from affinitomo.simulate.tomogram import box_mask, render_particles

log = logging.getLogger(__name__)


@dataclass
class SimClass:
    """One class of the simulation: its template at the tomogram's voxel size, and whether it is known.

    ``template`` is the density the particles are rendered from; ``reference``, when given, is
    the template written to ``templates/`` instead (a map from another source, same voxel size).
    """

    name: str
    template: np.ndarray  # float32 cube [z, y, x], centre at N//2, protein positive
    known: bool = True
    reference: np.ndarray | None = None

    @property
    def written(self) -> np.ndarray:
        """The map written to ``templates/<name>.mrc``."""
        return self.template if self.reference is None else self.reference

    @property
    def radius(self) -> float:
        return bounding_radius(self.template)

    @property
    def box(self) -> int:
        return int(self.template.shape[0])


def tomogram_names(n: int) -> list[str]:
    """``tomo01``, ``tomo02``, ... (two digits at least)."""
    width = max(2, len(str(n)))
    return [f"tomo{i + 1:0{width}d}" for i in range(n)]


def validate_common(shape: Sequence[int], per_class: int, n_tomograms: int, voxel_size: float, labelled_fraction: float) -> None:
    """Raise :class:`InputError` for settings no simulation can use."""
    if len(shape) != 3 or any(int(s) < 8 for s in shape):
        raise InputError(None, "shape", f"three sizes Z Y X of at least 8 voxels, got {tuple(shape)}")
    if per_class < 1:
        raise InputError(None, "per-class", f"at least one particle per class, got {per_class}")
    if n_tomograms < 1:
        raise InputError(None, "n-tomograms", f"at least one tomogram, got {n_tomograms}")
    if not (np.isfinite(voxel_size) and voxel_size > 0):
        raise InputError(None, "voxel-size", f"a positive voxel size in Å, got {voxel_size}")
    if not 0 <= labelled_fraction <= 1:
        raise InputError(None, "labelled-fraction", f"a fraction in [0, 1], got {labelled_fraction}")


def particle_rows(name: str, placement: Placement, classes: Sequence[SimClass], voxel_size: float) -> pd.DataFrame:
    """Truth rows of one tomogram: coordinates (x, y, z pixels), RELION angles, class."""
    angles = matrix_to_euler(placement.matrices) if len(placement) else np.zeros((0, 3))
    return pd.DataFrame(
        {
            "rlnTomoName": name,
            "rlnCoordinateX": placement.centres[:, 2].astype(float),
            "rlnCoordinateY": placement.centres[:, 1].astype(float),
            "rlnCoordinateZ": placement.centres[:, 0].astype(float),
            "rlnAngleRot": angles[:, 0],
            "rlnAngleTilt": angles[:, 1],
            "rlnAnglePsi": angles[:, 2],
            "rlnClassNumber": placement.class_index.astype(np.int64) + 1,
            "afmClassName": [classes[c].name for c in placement.class_index],
            "afmPixelSize": float(voxel_size),
        }
    )


def picked_table(truth: pd.DataFrame, classes: Sequence[SimClass], labelled_fraction: float, rng: np.random.Generator) -> pd.DataFrame:
    """What a picker and a curator give: coordinates, labels for a fraction of each known class, no angles."""
    labelled = np.zeros(len(truth), dtype=bool)
    for c in classes:
        if not c.known:
            continue
        idx = np.flatnonzero(truth["afmClassName"].to_numpy() == c.name)
        n = int(round(labelled_fraction * len(idx)))
        labelled[rng.choice(idx, size=n, replace=False)] = True
    cols = ["rlnTomoName", "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnClassNumber", "afmClassName", "afmPixelSize", "afmParticleId"]
    picked = truth[cols].copy()
    picked.loc[~labelled, "afmClassName"] = ""
    picked.loc[~labelled, "rlnClassNumber"] = 0
    return picked


def write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")


def simulate_dataset(
    out: str | Path,
    classes: Sequence[SimClass],
    *,
    shape: Sequence[int],
    per_class: int,
    n_tomograms: int = 1,
    voxel_size: float = 10.0,
    imaging: Imaging | None = None,
    labelled_fraction: float = 0.5,
    seed: int = 0,
    whole_box_inside: bool = False,
    progress: bool = True,
    extra_metadata: dict | None = None,
    realism: Realism | None = None,
) -> dict:
    """Simulate ``n_tomograms`` tomograms of ``per_class`` particles of every class each; write the data set.

    Particles are placed without overlap (bounding spheres ``r_i + r_j + 1``
    voxels apart, of the classes' templates) at uniformly random SO(3) poses; a
    particle's centre is at least its radius (or half its box, with
    ``whole_box_inside``) from every face. ``realism`` varies the particles and
    each tomogram's true defocus (:mod:`affinitomo.simulate.realism`); its knobs'
    per-particle values are truth.star columns. Deterministic for a seed. Returns
    the summary also written to ``simulation.json``.
    """
    t0 = time.perf_counter()
    imaging = imaging or Imaging()
    imaging.validate()
    realism = realism or Realism()
    realism.validate()
    if realism.defocus_spread_um > 0 and not (imaging.mode == "tiltseries" and imaging.ctf):
        raise InputError(None, "defocus-spread-um", "a CTF to spread (--imaging tiltseries without --no-ctf)")
    shape = tuple(int(s) for s in shape)
    validate_common(shape, per_class, n_tomograms, voxel_size, labelled_fraction)
    if not classes:
        raise InputError(None, "templates", "at least one class to simulate")
    names = [c.name for c in classes]
    if len(set(names)) != len(names):
        raise InputError(None, "templates", f"unique class names, got {names}")
    out = Path(out)
    radii = [c.radius for c in classes]
    margins = [c.box / 2 if whole_box_inside else r for c, r in zip(classes, radii)]
    seeds = np.random.SeedSequence(seed).spawn(n_tomograms + 1)
    tables, per_tomo = [], []
    for tomo_name, ss in zip(tomogram_names(n_tomograms), seeds[:-1]):
        t1 = time.perf_counter()
        rng = np.random.default_rng(ss)
        placement = place_particles(shape, radii, [per_class] * len(classes), rng, margins=margins)
        templates = [c.template for c in classes]
        variation = ParticleVariation(templates, placement.class_index, realism, voxel_size, ss) if realism.per_particle else None
        clean = render_particles(shape, templates, placement, progress=progress, density=variation)
        mask = box_mask(shape, placement, [c.box for c in classes])
        tomo_imaging, defocus = imaging, {}
        if realism.defocus_spread_um > 0:
            true = true_defocus(imaging.defocus_um, realism.defocus_spread_um, ss)
            tomo_imaging = replace(imaging, defocus_um=true)
            defocus = {"defocus_um_stated": imaging.defocus_um, "defocus_um_true": true}
        tomo, info = image_volume(clean, mask, tomo_imaging, voxel_size, rng, progress=progress)
        del clean, mask
        write_volume(out / "tomograms" / f"{tomo_name}.mrc", tomo, voxel_size)
        del tomo
        rows = particle_rows(tomo_name, placement, classes, voxel_size)
        for column, values in (variation.columns() if variation is not None else {}).items():
            rows[column] = values
        if defocus:
            rows["afmTrueDefocusUm"] = defocus["defocus_um_true"]
        tables.append(rows)
        info.update(name=tomo_name, n_particles=len(placement), seconds=round(time.perf_counter() - t1, 2), **defocus)
        per_tomo.append(info)
        log.info("%s: %d particles, SNR %.3g (target %s), %.1f s", tomo_name, len(placement), info["snr_achieved"], imaging.snr, info["seconds"])
    truth = pd.concat(tables, ignore_index=True)
    truth["afmParticleId"] = np.arange(len(truth), dtype=np.int64)
    picked = picked_table(truth, classes, labelled_fraction, np.random.default_rng(seeds[-1]))
    for c in classes:
        if c.known:
            write_volume(out / "templates" / f"{c.name}.mrc", c.written, voxel_size)
    class_table = pd.DataFrame({"name": names, "number": np.arange(1, len(classes) + 1), "known": [c.known for c in classes]})
    with atomic_path(out / "classes.csv") as tmp:
        class_table.to_csv(tmp, index=False)
    write_particles(out / "truth.star", truth)
    write_particles(out / "particles.star", picked)
    summary = {
        "affinitomo_version": __version__,
        "seed": seed,
        "shape_zyx": list(shape),
        "voxel_size": voxel_size,
        "per_class_per_tomogram": per_class,
        "n_tomograms": n_tomograms,
        "labelled_fraction": labelled_fraction,
        "n_labelled": int((picked["afmClassName"] != "").sum()),
        "imaging": imaging.as_dict(),
        "realism": realism.as_dict(),
        "classes": [
            {"name": c.name, "number": i + 1, "known": c.known, "box": c.box, "radius_voxels": round(r, 2)}
            for i, (c, r) in enumerate(zip(classes, radii))
        ],
        "tomograms": per_tomo,
        "seconds": round(time.perf_counter() - t0, 2),
        **(extra_metadata or {}),
    }
    write_json(out / "simulation.json", summary)
    return summary
