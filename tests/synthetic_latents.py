"""Synthetic latents, tables and truth for the embed/cluster/evaluate tests (made in code)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from affinitomo.geometry import euler_to_matrix, matrix_to_euler, random_matrices

KNOWN = ["alpha", "beta", "gamma"]
HELD_OUT = "delta"


@dataclass
class Synthetic:
    table: pd.DataFrame  # the pipeline's input table (labels on a fraction of known classes)
    truth: pd.DataFrame  # every particle's true class and pose
    mu: np.ndarray
    rotation: np.ndarray  # predicted rotations = true @ G_class^T (+ noise)
    true_class: np.ndarray


def make_blobs(n: int = 400, latent_dim: int = 8, labelled_fraction: float = 0.25, separation: float = 6.0,
               pose_noise_deg: float = 5.0, seed: int = 0) -> Synthetic:
    """Four Gaussian blobs (three known classes, one held out) in latent space, two tomograms."""
    rng = np.random.default_rng(seed)
    names = KNOWN + [HELD_OUT]
    q, _ = np.linalg.qr(rng.normal(size=(latent_dim, latent_dim)))
    centres = separation * q[: len(names)]  # orthogonal directions: pairwise distance separation * sqrt(2)
    cls = rng.integers(0, len(names), n)
    mu = centres[cls] + rng.normal(size=(n, latent_dim))
    true_class = np.array(names, dtype=object)[cls]
    true_rot = random_matrices(n, rng)
    offsets = random_matrices(len(names), rng)  # each class's learnt frame differs by G
    noise = np.stack([_small_rotation(rng, pose_noise_deg) for _ in range(n)])
    rotation = np.einsum("nij,njk,nlk->nil", true_rot, noise, offsets[cls])  # true @ noise @ G^T
    ids = rng.permutation(n) * 3 + 7  # ids unrelated to row order
    angles = matrix_to_euler(true_rot)
    base = pd.DataFrame({
        "rlnTomoName": np.where(np.arange(n) % 2 == 0, "tomo_a", "tomo_b"),
        "rlnCoordinateX": rng.uniform(0, 100, n), "rlnCoordinateY": rng.uniform(0, 100, n),
        "rlnCoordinateZ": rng.uniform(0, 50, n),
        "rlnAngleRot": 0.0, "rlnAngleTilt": 0.0, "rlnAnglePsi": 0.0,
        "rlnClassNumber": 0, "afmClassName": "", "afmPixelSize": 10.0, "afmParticleId": ids,
    })
    truth = base.copy()
    truth["afmClassName"] = true_class.astype(str)
    truth["rlnClassNumber"] = cls + 1
    truth["rlnAngleRot"], truth["rlnAngleTilt"], truth["rlnAnglePsi"] = angles.T
    table = base.copy()
    labelled = (cls < len(KNOWN)) & (rng.random(n) < labelled_fraction)
    table.loc[labelled, "afmClassName"] = true_class[labelled].astype(str)
    table.loc[labelled, "rlnClassNumber"] = cls[labelled] + 1
    return Synthetic(table, truth, mu, rotation, true_class)


def _small_rotation(rng: np.random.Generator, deg: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return Rotation.from_rotvec(axis * np.radians(abs(rng.normal(0, deg)))).as_matrix()


def write_inputs(folder: Path, syn: Synthetic, *, with_rotation: bool = True, matrix: bool = True,
                 pose_dims: int = 3) -> dict[str, Path]:
    """Write particles.star, truth.star, latents.npz, embedding.csv, matrix.csv; return their paths."""
    from affinitomo.io.particles import write_particles

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"particles": folder / "particles.star", "truth": folder / "truth.star",
             "latents": folder / "latents.npz", "embedding": folder / "embedding.csv"}
    write_particles(paths["particles"], syn.table)
    write_particles(paths["truth"], syn.truth)
    arrays = {"particle_id": syn.table["afmParticleId"].to_numpy(np.int64), "mu": syn.mu,
              "logvar": np.full_like(syn.mu, -2.0), "pose": np.random.default_rng(0).normal(size=(len(syn.mu), pose_dims))}
    if with_rotation:
        arrays["rotation"] = syn.rotation
    np.savez(paths["latents"], **arrays)
    # A stand-in embedding (the first two principal axes) so these tests need no UMAP.
    centred = syn.mu - syn.mu.mean(axis=0)
    xy = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    pd.DataFrame({"afmParticleId": arrays["particle_id"], "UMAP0": xy[:, 0], "UMAP1": xy[:, 1]}).to_csv(
        paths["embedding"], index=False)
    if matrix:
        from affinitomo.io.similarity import write_similarity

        names = KNOWN + [HELD_OUT]
        m = np.array([[1.0, 0.5, 0.2, -0.1], [0.5, 1.0, 0.3, 0.0], [0.2, 0.3, 1.0, 0.4], [-0.1, 0.0, 0.4, 1.0]])
        paths["matrix"] = write_similarity(folder / "matrix.csv", names[::-1], m)  # order differs from sorted
    return paths


def true_rotations(truth: pd.DataFrame) -> np.ndarray:
    return euler_to_matrix(truth["rlnAngleRot"].to_numpy(), truth["rlnAngleTilt"].to_numpy(),
                           truth["rlnAnglePsi"].to_numpy())
