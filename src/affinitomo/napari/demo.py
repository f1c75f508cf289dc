"""A small synthetic results folder for the napari sample data, tests and benchmarks.

Particles of a few asymmetric shapes (sums of Gaussian blobs) are placed at random,
non-overlapping positions and random poses in a noisy tomogram. Latent vectors are
drawn around a per-class centre, and the 2D coordinates stored as ``afmUMAP0/1`` are
their PCA projection, so clusters, medoids and re-embedding behave as on real output.
One class plays the held-out protein: it is reported as 'unknown'.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from affinitomo.geometry import matrix_to_euler, random_matrices, rotate_volume
from affinitomo.io.atomic import atomic_path
from affinitomo.io.volumes import write_volume

# blob centres (x, y, z) in units of the particle radius; the last is the held-out class
SHAPES: dict[str, list[tuple[float, float, float]]] = {
    "dimer": [(-0.5, 0, 0), (0.5, 0, 0), (0.5, 0, 0.6)],
    "trimer": [(0, 0.55, 0), (0.5, -0.3, 0), (-0.5, -0.3, 0), (0, 0, 0.7)],
    "ring": [(0.6 * np.cos(a), 0.6 * np.sin(a), 0.25 * np.sin(2 * a)) for a in np.linspace(0, 2 * np.pi, 7)[:-1]],
    "rod": [(0, 0, -0.75), (0, 0, -0.25), (0, 0, 0.25), (0, 0, 0.75), (0.4, 0, 0.75)],
}
HELD_OUT = "rod"


def template(name: str, box: int) -> np.ndarray:
    """The class's density map, ``[z, y, x]`` float32, protein bright, centred at ``box // 2``."""
    radius = box / 4
    grid = np.indices((box, box, box), dtype=np.float32) - box // 2  # z, y, x
    vol = np.zeros((box, box, box), dtype=np.float32)
    sigma = radius / 3.5
    for x, y, z in SHAPES[name]:
        d2 = (grid[2] - x * radius) ** 2 + (grid[1] - y * radius) ** 2 + (grid[0] - z * radius) ** 2
        vol += np.exp(-d2 / (2 * sigma**2))
    return vol / vol.max()


def place_centres(n: int, shape: tuple[int, int, int], spacing: float, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` random (x, y, z) centres at least ``spacing`` apart, inside ``shape`` ([z, y, x])."""
    margin = spacing / 2
    hi = np.array(shape[::-1], dtype=float) - margin
    centres: list[np.ndarray] = []
    from scipy.spatial import cKDTree

    for _ in range(20):
        need = n - len(centres)
        if need <= 0:
            break
        cand = rng.uniform(margin, hi, size=(need * 3, 3))
        for c in cand:
            if len(centres) >= n:
                break
            if centres and cKDTree(np.array(centres)).query(c)[0] < spacing:
                continue
            centres.append(c)
    return np.rint(np.array(centres)).astype(float)


def make_demo(
    n_particles: int = 60,
    shape: tuple[int, int, int] = (48, 160, 160),
    pixel_size: float = 10.0,
    box: int = 16,
    noise: float = 0.2,
    latent_dim: int = 8,
    render: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, pd.DataFrame, dict[str, np.ndarray], np.ndarray]:
    """(tomogram, particle table, class averages, latents) for one synthetic tomogram.

    ``render=False`` skips drawing the particles (fast, for benchmarks with 100k points).
    """
    rng = np.random.default_rng(seed)
    names = list(SHAPES)
    known = [n for n in names if n != HELD_OUT]
    if render:
        centres = place_centres(n_particles, shape, spacing=box * 0.75, rng=rng)
    else:
        centres = np.rint(rng.uniform(box / 2, np.array(shape[::-1]) - box / 2, size=(n_particles, 3)))
    n = len(centres)
    truth = rng.integers(0, len(names), size=n)
    mats = random_matrices(n, rng)
    angles = matrix_to_euler(mats)
    templates = {name: template(name, box) for name in names}
    tomogram = rng.normal(0.0, noise, size=shape).astype(np.float32)
    if render:
        half = box // 2
        for c, k, a in zip(centres.astype(int), truth, mats):
            vol = rotate_volume(templates[names[k]], a)
            x, y, z = c
            sl = (slice(z - half, z - half + box), slice(y - half, y - half + box), slice(x - half, x - half + box))
            tomogram[sl] += vol[: tomogram[sl].shape[0], : tomogram[sl].shape[1], : tomogram[sl].shape[2]]
    class_centres = rng.normal(0, 3.0, size=(len(names), latent_dim))
    latents = (class_centres[truth] + rng.normal(0, 1.0, size=(n, latent_dim))).astype(np.float32)
    centred = latents - latents.mean(axis=0)
    _, _, vt = np.linalg.svd(centred[: min(n, 20000)], full_matrices=False)
    umap2 = centred @ vt[:2].T
    confidence = np.clip(rng.beta(8, 2, size=n), 0, 1)
    assigned = np.array([names[k] if names[k] in known else "unknown" for k in truth], dtype=object)
    numbers = np.array([known.index(a) + 1 if a in known else 0 for a in assigned])
    table = pd.DataFrame(
        {
            "rlnTomoName": "demo",
            "rlnCoordinateX": centres[:, 0],
            "rlnCoordinateY": centres[:, 1],
            "rlnCoordinateZ": centres[:, 2],
            "rlnAngleRot": angles[:, 0],
            "rlnAngleTilt": angles[:, 1],
            "rlnAnglePsi": angles[:, 2],
            "rlnClassNumber": numbers,
            "afmClassName": assigned,
            "afmClusterId": truth,
            "afmConfidence": confidence,
            "afmUMAP0": umap2[:, 0],
            "afmUMAP1": umap2[:, 1],
            "afmPixelSize": float(pixel_size),
            "afmParticleId": np.arange(n),
        }
    )
    averages = {name: templates[name] for name in known}
    return tomogram, table, averages, latents


def write_demo_results(out_dir: str | Path, **kwargs: object) -> Path:
    """Write a demo as ``out_dir/tomograms/demo.mrc`` and ``out_dir/results/`` (STAR, classes,
    averages, latents, run.json); returns the results folder."""
    from affinitomo.io.particles import write_particles

    out_dir = Path(out_dir)
    tomogram, table, averages, latents = make_demo(**kwargs)  # type: ignore[arg-type]
    pixel = float(table["afmPixelSize"].iloc[0]) if len(table) else 10.0
    results = out_dir / "results"
    tomo_path = write_volume(out_dir / "tomograms" / "demo.mrc", tomogram, pixel)
    write_particles(results / "particles.star", table)
    for name, vol in averages.items():
        write_volume(results / "averages" / f"{name}.mrc", vol, pixel)
    with atomic_path(results / "classes.csv") as tmp:
        pd.DataFrame({"name": list(averages), "number": range(1, len(averages) + 1), "known": 1}).to_csv(tmp, index=False)
    with atomic_path(results / "latents.npz") as tmp:
        np.savez(tmp, particle_id=table["afmParticleId"].to_numpy(), mu=latents)
    with atomic_path(results / "run.json") as tmp:
        tmp.write_text(json.dumps({"tomograms": {"demo": str(tomo_path.resolve())}, "latents": "latents.npz"}, indent=1))
    return results
