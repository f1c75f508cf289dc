"""Training labels from particle tables: class indices into the similarity matrix, true poses.

One or several sources (stack + its table, paired in order) make one :class:`TrainingData`
over a :class:`~affinitomo.train.data.StackSet`; nothing is loaded into memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from affinitomo.errors import InputError
from affinitomo.geometry import euler_to_matrix
from affinitomo.io.stacks import SubtomoStack
from affinitomo.train.data import StackSet
from affinitomo.train.loop import TrainingData

ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")


def labels_from_names(names: np.ndarray, classes: list[str]) -> np.ndarray:
    """Class index of each name in ``classes``; "" (or NaN) -> -1 (unlabelled)."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(str(n), -1) if isinstance(n, str) and n else -1 for n in names], dtype=np.int64)


def _class_names(table: pd.DataFrame, particles: str | Path) -> np.ndarray:
    if "afmClassName" not in table.columns:
        raise InputError(particles, "afmClassName", "class names for the labelled particles")
    return table["afmClassName"].fillna("").astype(str).str.strip().to_numpy()


def _simulated(table: pd.DataFrame, particles: str | Path) -> np.ndarray:
    """(N,) bool from afmSimulated (0/1); all False when the column is absent."""
    if "afmSimulated" not in table.columns:
        return np.zeros(len(table), bool)
    values = pd.to_numeric(table["afmSimulated"], errors="coerce").to_numpy()
    if not np.isin(values, (0, 1)).all():
        raise InputError(particles, "afmSimulated", "0 or 1 on every row")
    return values == 1


def _rotations(table: pd.DataFrame, particles: str | Path) -> np.ndarray:
    """(N, 3, 3) matrices from the RELION angles; NaN rows where absent or blank."""
    out = np.full((len(table), 3, 3), np.nan, np.float32)
    if not all(c in table.columns for c in ANGLES):
        return out
    angles = np.stack([pd.to_numeric(table[c], errors="coerce").to_numpy(float) for c in ANGLES], 1)
    ok = np.isfinite(angles).all(1)
    if ok.any():
        out[ok] = euler_to_matrix(angles[ok, 0], angles[ok, 1], angles[ok, 2]).astype(np.float32)
    return out


def load_training_sources(
    sources: list[tuple[str | Path | SubtomoStack, str | Path]], matrix: str | Path
) -> TrainingData:
    """One training set from several (stack, particle table) pairs and the similarity matrix.

    Labels come from ``afmClassName`` (empty = unlabelled), the simulated flag from
    ``afmSimulated`` (absent = real), true poses from ``rlnAngleRot/Tilt/Psi`` where present.
    Training classes are the class names present in any source, in the matrix's order.
    Errors: a table whose length differs from its stack, boxes that differ, no labelled
    particle at all, a class missing from the matrix.
    """
    from affinitomo.io.particles import read_particles
    from affinitomo.io.similarity import read_similarity

    if not sources:
        raise InputError("--stack", None, "at least one stack and particle table")
    stacks, names, simulated, rotations = [], [], [], []
    for stack, particles in sources:
        stack = stack if isinstance(stack, SubtomoStack) else SubtomoStack(stack)
        table = read_particles(particles)
        if len(table) != len(stack):
            raise InputError(particles, "rows", f"one row per stack row ({len(stack)} in {stack.path}), got {len(table)}")
        stacks.append(stack)
        names.append(_class_names(table, particles))
        simulated.append(_simulated(table, particles))
        rotations.append(_rotations(table, particles))
    all_names = np.concatenate(names)
    present = sorted({n for n in all_names if n})
    if not present:
        where = ", ".join(str(p) for _, p in sources)
        raise InputError(where, "afmClassName", "at least one labelled particle (non-empty class name)")
    matrix_names, _ = read_similarity(matrix)
    missing = [c for c in present if c not in matrix_names]
    if missing:
        raise InputError(matrix, "header", f"a row and column for every training class; missing: {', '.join(missing)}")
    classes = [c for c in matrix_names if c in set(present)]
    classes, values = read_similarity(matrix, classes)
    return TrainingData(
        StackSet(stacks) if len(stacks) > 1 else stacks[0],
        labels_from_names(all_names, classes),
        classes,
        np.asarray(values, dtype=np.float32),
        rotations=np.concatenate(rotations),
        simulated=np.concatenate(simulated),
    )


def load_training_data(stack: SubtomoStack, particles: str | Path, matrix: str | Path) -> TrainingData:
    """One source: :func:`load_training_sources` with a single (stack, table) pair."""
    return load_training_sources([(stack, particles)], matrix)
