"""The extraction stack, memory-mapped, read one batch at a time (no worker processes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affinitomo.errors import InputError


class SubtomoStack:
    """``subtomos.npy`` (float32 N x B x B x B) opened with ``mmap_mode="r"``.

    Only the rows of a batch are read; memory use is independent of N.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(self.path, None, "subtomogram stack (.npy) not found")
        try:
            self.data = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(self.path, None, f"a .npy array file ({exc})") from None
        shape = self.data.shape
        if self.data.ndim != 4 or not (shape[1] == shape[2] == shape[3]) or shape[0] < 1:
            raise InputError(self.path, "shape", f"N x B x B x B cubic boxes, got {shape}")
        if self.data.dtype != np.float32:
            raise InputError(self.path, "dtype", f"float32, got {self.data.dtype}")

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def box(self) -> int:
        return int(self.data.shape[1])

    def read(self, indices: np.ndarray, normalise: str = "zscore") -> np.ndarray:
        """Rows ``indices`` as a (n, 1, B, B, B) float32 array, normalised per particle.

        Rows are read in increasing order (sequential I/O on the memmap) and returned in
        the order asked for. Non-finite values raise InputError naming the rows.
        """
        indices = np.asarray(indices, dtype=np.int64)
        order = np.argsort(indices, kind="stable")
        batch = np.empty((len(indices),) + self.data.shape[1:], np.float32)
        batch[order] = self.data[indices[order]]
        bad = ~np.isfinite(batch).reshape(len(indices), -1).all(1)
        if bad.any():
            raise InputError(self.path, "values", f"finite voxels; rows {indices[bad][:5].tolist()} hold NaN/inf")
        normalise_inplace(batch, normalise)
        return batch[:, None]


def normalise_inplace(batch: np.ndarray, mode: str) -> None:
    """Per-particle z-score ("zscore"), scaling to [0, 1] ("minmax"), or nothing ("none")."""
    if mode == "none":
        return
    flat = batch.reshape(len(batch), -1)
    if mode == "zscore":
        mean = flat.mean(1, keepdims=True)
        std = flat.std(1, keepdims=True)
        flat -= mean
        flat /= np.maximum(std, 1e-6)
    elif mode == "minmax":
        lo = flat.min(1, keepdims=True)
        hi = flat.max(1, keepdims=True)
        flat -= lo
        flat /= np.maximum(hi - lo, 1e-6)
    else:
        raise ValueError(f"unknown normalisation {mode!r}")


def rot90_augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply a random proper 90-degree rotation (one of 24) to each (1, B, B, B) volume."""
    out = np.empty_like(batch)
    ks = rng.integers(0, 4, size=(len(batch), 3))
    for i, (a, b, c) in enumerate(ks):
        v = np.rot90(batch[i, 0], a, axes=(1, 2))
        v = np.rot90(v, b, axes=(0, 2))
        out[i, 0] = np.rot90(v, c, axes=(0, 1))
    return out


def split_indices(rows: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/validation split of ``rows`` (reproducible from ``seed``)."""
    rows = np.asarray(rows, dtype=np.int64)
    rng = np.random.default_rng([seed, 7919])
    perm = rng.permutation(rows)
    n_val = int(round(len(rows) * val_fraction))
    if val_fraction > 0 and len(rows) >= 4:
        n_val = max(n_val, 1)
    n_val = min(n_val, max(len(rows) - 2, 0))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
