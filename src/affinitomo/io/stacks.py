"""Several subtomogram stacks (``subtomos.npy``, one per tomogram) read as one, by row.

Row ``i`` of the set is a row of one member stack, in the order the stacks are given (the
order of the gathered particle table). Members are memory-mapped; nothing is loaded until
rows are asked for, so memory does not grow with the number of particles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
