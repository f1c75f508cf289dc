"""Subtomogram stacks (``subtomos.npy``): one memory-mapped stack read by batch (:class:`SubtomoStack`,
normalised per particle), and several (one per tomogram) read as one, by row (:func:`open_stacks`).

Row ``i`` of the set is a row of one member stack, in the order the stacks are given (the
order of the gathered particle table). Members are memory-mapped; nothing is loaded until
rows are asked for, so memory does not grow with the number of particles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from affinitomo.errors import InputError


def open_npy_stack(path: str | Path) -> np.ndarray:
    """Memory-map one ``subtomos.npy`` and check it holds cubic boxes."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "subtomogram stack (.npy) not found")
    try:
        stack = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise InputError(path, None, f"a .npy stack readable with np.load ({exc})") from exc
    if stack.ndim != 4 or not (stack.shape[1] == stack.shape[2] == stack.shape[3]):
        raise InputError(path, "shape", f"a stack of cubic subtomograms (N, B, B, B), got {stack.shape}")
    return stack


def nonfinite_rows(stack: np.ndarray, chunk_bytes: int = 64 * 2**20) -> np.ndarray:
    """Indices of the rows of ``stack`` (N, ...) holding NaN or Inf, read chunk by chunk."""
    row_bytes = max(1, int(np.prod(stack.shape[1:], dtype=np.int64)) * stack.dtype.itemsize)
    chunk = max(1, chunk_bytes // row_bytes)
    bad = []
    for start in range(0, len(stack), chunk):
        block = np.asarray(stack[start:start + chunk])
        bad.append(start + np.flatnonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1)))
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


class StackRows:
    """Stacks concatenated by rows, read lazily: ``rows[index_array]`` -> float32 array."""

    def __init__(self, paths: list[str | Path]):
        if not paths:
            raise InputError("--stack", None, "at least one subtomogram stack")
        self.paths = [Path(p) for p in paths]
        self.members = [open_npy_stack(p) for p in self.paths]
        box = self.members[0].shape[1:]
        for path, member in zip(self.paths[1:], self.members[1:]):
            if member.shape[1:] != box:
                raise InputError(path, "shape", f"boxes of {box} like {self.paths[0]}, got {member.shape[1:]}")
        sizes = np.array([m.shape[0] for m in self.members], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.shape = (int(self.offsets[-1]),) + tuple(int(s) for s in box)
        self.ndim = 4
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        """Rows by integer, slice or integer array, as float32 (single rows without the first axis)."""
        if isinstance(index, (int, np.integer)):
            return self[np.array([index])][0]
        rows = np.arange(self.shape[0])[index] if isinstance(index, slice) else np.asarray(index, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"rows outside 0..{self.shape[0] - 1}")
        out = np.empty((rows.size,) + self.shape[1:], np.float32)
        member = np.searchsorted(self.offsets, rows, side="right") - 1
        for k in np.unique(member):
            sel = np.flatnonzero(member == k)
            local = rows[sel] - self.offsets[k]
            order = np.argsort(local, kind="stable")  # sequential reads on the memmap
            out[sel[order]] = self.members[k][local[order]]
        return out


def open_stacks(paths: str | Path | list[str | Path], n_rows: int | None = None) -> StackRows:
    """One or several stacks as :class:`StackRows`; with ``n_rows``, check one row per table row."""
    rows = StackRows([paths] if isinstance(paths, (str, Path)) else list(paths))
    if n_rows is not None and len(rows) != n_rows:
        where = rows.paths[0] if len(rows.paths) == 1 else f"{len(rows.paths)} stacks ({rows.paths[0]}, ...)"
        raise InputError(where, "shape", f"{n_rows} subtomograms (one per table row), got {len(rows)}")
    return rows


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


def stack_voxel_size(table: pd.DataFrame, path: Path) -> float:
    """The stack's voxel size from the table's ``afmPixelSize`` (one value)."""
    px = table["afmPixelSize"].to_numpy(float)
    if not np.isfinite(px).all():
        raise InputError(path, "afmPixelSize", "a pixel size for every particle (the extract stage's table)")
    if np.abs(px - px[0]).max() > 0.01 * px[0]:
        raise InputError(path, "afmPixelSize", f"one pixel size for the whole stack, got {np.unique(px)}")
    return float(px[0])
