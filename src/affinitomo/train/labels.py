"""Training labels: class names from the particle table, indices into the similarity matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affinitomo.errors import InputError
from affinitomo.train.data import SubtomoStack
from affinitomo.train.loop import TrainingData


def labels_from_names(names: np.ndarray, classes: list[str]) -> np.ndarray:
    """Class index of each name in ``classes``; "" (or NaN) -> -1 (unlabelled)."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(str(n), -1) if isinstance(n, str) and n else -1 for n in names], dtype=np.int64)


def load_training_data(stack: SubtomoStack, particles: str | Path, matrix: str | Path) -> TrainingData:
    """Read the table and matrix; training classes are the non-empty afmClassName values.

    Class order is the matrix's order (so labels index its rows). Errors: a table whose length
    differs from the stack, no labelled particle, a class missing from the matrix.
    """
    from affinitomo.io.particles import read_particles
    try:
        from affinitomo.similarity import read_similarity
    except ImportError:  # the package may not re-export it (yet)
        from affinitomo.similarity.matrix_io import read_similarity

    table = read_particles(particles)
    if len(table) != len(stack):
        raise InputError(particles, "rows", f"one row per stack row ({len(stack)} in {stack.path}), got {len(table)}")
    if "afmClassName" not in table.columns:
        raise InputError(particles, "afmClassName", "class names for the labelled particles")
    names = table["afmClassName"].fillna("").astype(str).to_numpy()
    present = sorted({n for n in names if n})
    if not present:
        raise InputError(particles, "afmClassName", "at least one labelled particle (non-empty class name)")
    all_names, _ = read_similarity(matrix)
    missing = [c for c in present if c not in all_names]
    if missing:
        raise InputError(matrix, "header", f"a row and column for every training class; missing: {', '.join(missing)}")
    classes = [c for c in all_names if c in set(present)]
    classes, values = read_similarity(matrix, classes)
    return TrainingData(stack, labels_from_names(names, classes), classes, np.asarray(values, dtype=np.float32))
