"""A small results folder for the napari sample data, tests and benchmarks.

The tomogram, particles, poses and templates come from the package's demo
simulator (:func:`affinitomo.simulate.demo.simulate_demo`: pseudo-protein phantoms,
missing wedge, CTF, noise). What the later stages would add is synthesised from the
truth so that the sample opens in seconds without training: latent vectors drawn
around a per-class centre, their PCA projection as ``afmUMAP0/1``, the true class as
the assignment and the cluster (the held-out class as 'unknown', in its own unknown
group ``unknown_c<cluster id>``, numbered and listed in ``classes.csv`` as the cluster
stage does), the templates as the averages of the classes and unknown groups.
Clusters, medoids and re-embedding then behave as on real output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from affinitomo.io.atomic import atomic_path
from affinitomo.io.latents import Latents, write_latents
from affinitomo.io.volumes import read_volume, write_volume
from affinitomo.labels import UNKNOWN, UNKNOWN_GROUP_PREFIX

SAMPLE_SHAPE = (64, 192, 192)  # [z, y, x]: ~0.6 s to simulate on 2 cores
SAMPLE_PER_CLASS = 5  # 10 classes -> 50 particles


def synthetic_results(truth: pd.DataFrame, known: Sequence[str], latent_dim: int = 8,
                      seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """(results table, latents) as the cluster stage would write them, from a truth table.

    ``truth`` needs ``afmClassName``; classes not in ``known`` are assigned 'unknown'.
    """
    from affinitomo.labels import class_numbers

    rng = np.random.default_rng(seed)
    names = list(dict.fromkeys(truth["afmClassName"].astype(str)))
    index = {name: i for i, name in enumerate(names)}
    truth_id = truth["afmClassName"].astype(str).map(index).to_numpy()
    n = len(truth)
    centres = rng.normal(0, 3.0, size=(len(names), latent_dim))
    latents = (centres[truth_id] + rng.normal(0, 1.0, size=(n, latent_dim))).astype(np.float32)
    centred = latents - latents.mean(axis=0)
    _, _, vt = np.linalg.svd(centred[: min(n, 20000)], full_matrices=False)
    umap2 = centred @ vt[:2].T
    known = list(known)
    assigned = np.array([name if name in known else UNKNOWN for name in truth["afmClassName"].astype(str)], dtype=object)
    table = truth.reset_index(drop=True).copy()
    table["afmClassName"] = assigned
    table["rlnClassNumber"] = class_numbers(known, assigned, truth_id)[0]
    table["afmClusterId"] = truth_id
    table["afmConfidence"] = np.clip(rng.beta(8, 2, size=n), 0, 1)
    table["afmUMAP0"] = umap2[:, 0]
    table["afmUMAP1"] = umap2[:, 1]
    if "afmParticleId" not in table.columns:
        table["afmParticleId"] = np.arange(n)
    return table, latents


def write_results(results: Path, table: pd.DataFrame, latents: np.ndarray, known: Sequence[str],
                  tomograms: dict[str, Path], averages: dict[str, np.ndarray], pixel_size: float,
                  diameter: float | None = None) -> Path:
    """Write a results folder: particles.star, classes.csv, averages/, latents.npz, run.json.

    ``averages`` maps class and unknown group names to volumes; ``diameter`` (Å) goes to
    run.json's ``particle_diameter`` when given.
    """
    from affinitomo.io.particles import write_particles
    from affinitomo.io.results import write_classes_csv
    from affinitomo.labels import class_numbers, safe_name

    write_particles(results / "particles.star", table)
    for name, vol in averages.items():
        write_volume(results / "averages" / f"{safe_name(name)}.mrc", vol, pixel_size)
    write_classes_csv(results / "classes.csv", class_numbers(list(known), table["afmClassName"].to_numpy(),
                                                             table["afmClusterId"].to_numpy())[1])
    mu = np.asarray(latents, np.float32)
    write_latents(results / "latents.npz", Latents(table["afmParticleId"].to_numpy().astype(np.int64), mu,
                                                   np.zeros_like(mu), np.zeros((len(mu), 1), np.float32)))
    run = {"tomograms": {k: str(Path(v).resolve()) for k, v in tomograms.items()}, "latents": "latents.npz"}
    if diameter:
        run["particle_diameter"] = float(diameter)
    with atomic_path(results / "run.json") as tmp:
        tmp.write_text(json.dumps(run, indent=1))
    return results


def write_demo_results(out_dir: str | Path, *, seed: int = 0, shape: Sequence[int] = SAMPLE_SHAPE,
                       per_class: int = SAMPLE_PER_CLASS, n_tomograms: int = 1) -> Path:
    """Simulate ``n_tomograms`` demo tomograms into ``out_dir`` and write ``out_dir/results``; returns the
    results folder."""
    from affinitomo.io.particles import read_particles
    from affinitomo.simulate.demo import demo_classes, simulate_demo

    out_dir = Path(out_dir)
    summary = simulate_demo(out_dir, seed=seed, n_tomograms=n_tomograms, shape=tuple(shape), per_class=per_class,
                            progress=False)
    classes = pd.read_csv(out_dir / "classes.csv")
    known = [str(n) for n, k in zip(classes["name"], classes["known"]) if str(k).lower() in ("true", "1")]
    truth = read_particles(out_dir / "truth.star")
    table, latents = synthetic_results(truth, known, seed=seed)
    pixel = float(table["afmPixelSize"].iloc[0])
    tomograms = {name: out_dir / "tomograms" / f"{name}.mrc" for name in table["rlnTomoName"].unique()}
    averages = {name: read_volume(out_dir / "templates" / f"{name}.mrc")[0] for name in known}
    true_names = truth["afmClassName"].astype(str).to_numpy()
    for sim in demo_classes():  # a held-out class (no template written): its unknown group's average
        if sim.name not in known and (true_names == sim.name).any():
            cluster = int(table["afmClusterId"].to_numpy()[true_names == sim.name][0])
            averages[f"{UNKNOWN_GROUP_PREFIX}{cluster}"] = sim.template
    diameter = 2 * float(np.median([c["radius_voxels"] for c in summary["classes"]])) * pixel
    return write_results(out_dir / "results", table, latents, known, tomograms, averages, pixel, diameter)


def write_synthetic_scale(out_dir: str | Path, *, n_particles: int = 100_000, shape: Sequence[int] = (64, 1024, 1024),
                          pixel_size: float = 10.0, seed: int = 0) -> Path:
    """A results folder with ``n_particles`` at random positions of one noise tomogram (for benchmarks).

    So many particles cannot be placed without overlap, so none is drawn: this measures
    the review's handling of the table and layers, not the picture.
    """
    from affinitomo.simulate.phantoms import DEFAULT_HELD_OUT, demo_phantoms

    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    names = [p.name for p in demo_phantoms()]
    known = [n for n in names if n != DEFAULT_HELD_OUT]
    shape = tuple(int(v) for v in shape)
    xyz = np.rint(rng.uniform(8, np.array(shape[::-1]) - 8, size=(n_particles, 3)))
    truth = pd.DataFrame({
        "rlnTomoName": "scale", "rlnCoordinateX": xyz[:, 0], "rlnCoordinateY": xyz[:, 1], "rlnCoordinateZ": xyz[:, 2],
        "rlnAngleRot": rng.uniform(-180, 180, n_particles), "rlnAngleTilt": np.degrees(np.arccos(rng.uniform(-1, 1, n_particles))),
        "rlnAnglePsi": rng.uniform(-180, 180, n_particles), "afmClassName": rng.choice(names, n_particles),
        "afmPixelSize": pixel_size, "afmParticleId": np.arange(n_particles),
    })
    table, latents = synthetic_results(truth, known, seed=seed)
    tomo = write_volume(out_dir / "tomograms" / "scale.mrc", rng.normal(0, 1, size=shape).astype(np.float32), pixel_size)
    return write_results(out_dir / "results", table, latents, known, {"scale": tomo}, {}, pixel_size, 16 * pixel_size)
