"""What the classify and report steps both read: the similarity matrix, the truth table, the latent prior."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affinitomo.errors import InputError

log = logging.getLogger(__name__)


def read_matrix(matrix_path: str | Path | None) -> tuple[list[str], np.ndarray] | None:
    """(class names, matrix) of the similarity CSV, or None."""
    if matrix_path is None:
        return None
    from affinitomo.io.similarity import read_similarity

    names, matrix = read_similarity(matrix_path)
    return list(names), np.asarray(matrix, dtype=float)


def truth_for(table: pd.DataFrame, truth_path: str | Path, particles_path: Any = "the particle table") -> pd.DataFrame:
    """Truth rows matched to the table by afmParticleId (NaN / '' where absent).

    The ids alone could match a truth table of other data (ids are often 0..N-1), so every
    matched row must also name the same tomogram and lie at the same place: within one voxel,
    in Å where both tables give pixel sizes (the extracted table's coordinates are binned),
    else in pixels. InputError naming the truth file and the first particle that differs.
    """
    from affinitomo.io.particles import read_particles

    truth = read_particles(truth_path)
    cols = ["afmParticleId", "afmClassName"] + [c for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
                                                if c in truth.columns]
    pos = pd.Index(truth["afmParticleId"].to_numpy(np.int64)).get_indexer(table["afmParticleId"].to_numpy(np.int64))
    _check_truth_places(table, truth, pos, truth_path, particles_path)
    matched = pd.DataFrame({c: truth[c].to_numpy()[np.maximum(pos, 0)] for c in cols})
    matched.loc[pos < 0, cols[1:]] = np.nan
    matched["afmParticleId"] = table["afmParticleId"].to_numpy()
    matched["afmClassName"] = matched["afmClassName"].fillna("").astype(str)
    n_missing = int((matched["afmClassName"] == "").sum())
    if n_missing == len(table):
        raise InputError(truth_path, "afmParticleId", "true classes for the particles (no afmParticleId matched)")
    if n_missing:
        log.warning("%d particles have no true class in %s and are not evaluated", n_missing, truth_path)
    return matched


def _check_truth_places(table: pd.DataFrame, truth: pd.DataFrame, pos: np.ndarray, truth_path: Any,
                        particles_path: Any) -> None:
    """InputError unless each truth row matched by id has the table row's tomogram and position."""
    from affinitomo.io.particles import COORDS

    rows = np.flatnonzero(pos >= 0)
    mine, theirs = table.iloc[rows], truth.iloc[pos[rows]]
    ids = mine["afmParticleId"].to_numpy()
    names = mine["rlnTomoName"].astype(str).to_numpy(), theirs["rlnTomoName"].astype(str).to_numpy()
    other = np.flatnonzero(names[0] != names[1])
    if other.size:
        i = other[0]
        raise InputError(truth_path, "rlnTomoName", f"the tomogram of each particle of {particles_path}; "
                                                    f"{other.size} of {rows.size} particles matched by id are in "
                                                    f"another, e.g. afmParticleId {ids[i]} in '{names[1][i]}', "
                                                    f"not '{names[0][i]}' (a truth table of other data?)")
    px = mine["afmPixelSize"].to_numpy(float), theirs["afmPixelSize"].to_numpy(float)
    in_angstrom = np.isfinite(px[0]) & np.isfinite(px[1])
    scale = np.where(in_angstrom, px[0], 1.0), np.where(in_angstrom, px[1], 1.0)
    xyz = mine[COORDS].to_numpy(float) * scale[0][:, None], theirs[COORDS].to_numpy(float) * scale[1][:, None]
    tolerance = np.maximum(scale[0], scale[1])  # one voxel of the coarser grid
    apart = np.linalg.norm(xyz[0] - xyz[1], axis=1)
    off = np.flatnonzero(apart > tolerance)
    if off.size:
        i = off[0]
        unit = "Å" if in_angstrom[i] else "pixels"
        raise InputError(truth_path, "rlnCoordinateX/Y/Z",
                         f"the position of each particle of {particles_path} (within one voxel); {off.size} of "
                         f"{rows.size} particles matched by id lie elsewhere, e.g. afmParticleId {ids[i]} is "
                         f"{apart[i]:.3g} {unit} away (a truth table of other data, or of other coordinates?)")


def latent_prior(mu: np.ndarray, names: np.ndarray, matrix: tuple[list[str], np.ndarray],
                 basis: str) -> dict[str, Any]:
    """Spearman rho between the matrix and the cosine similarity of class-mean latents (plus both matrices)."""
    from affinitomo.model.prior_check import class_mean_cosine, prior_spearman

    classes, m = matrix
    index = {c: i for i, c in enumerate(classes)}
    idx = np.array([index.get(str(c), -1) for c in names], dtype=np.int64)
    rho = prior_spearman(mu, idx, m)
    cos = class_mean_cosine(np.asarray(mu, float), idx, len(classes))
    present = [i for i in range(len(classes)) if (idx == i).any()]
    return {"rho": None if not np.isfinite(rho) else float(rho), "basis": basis,
            "names": [classes[i] for i in present], "matrix": m[np.ix_(present, present)],
            "cosine": cos[np.ix_(present, present)]}
