"""Subtomogram stacks as the stages write them: per-box options, per-box normalisation, dropping rows.

Conventions (edges, normalisation, inversion) are those of :mod:`affinitomo.extract`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path
from affinitomo.io.particles import write_particles


EDGE_MODES = ("pad", "skip")

CHUNK_BYTES = 16 * 2**20  # output buffer per chunk of particles


@dataclass(frozen=True)
class ExtractionOptions:
    """What to do to each subtomogram (see the module docstring for the conventions)."""

    box: int
    binning: int = 1
    normalise: bool = True
    invert: bool = False
    mask_radius: float | None = None
    edge: str = "pad"

    def check(self) -> None:
        if int(self.box) != self.box or self.box < 2:
            raise InputError(None, "box", f"an integer box size >= 2, got {self.box}")
        if int(self.binning) != self.binning or self.binning < 1:
            raise InputError(None, "binning", f"an integer binning factor >= 1, got {self.binning}")
        if self.edge not in EDGE_MODES:
            raise InputError(None, "edge", f"one of {EDGE_MODES}, got {self.edge!r}")
        if self.mask_radius is not None and not (0 < self.mask_radius):
            raise InputError(None, "mask_radius", f"a positive radius in output voxels, got {self.mask_radius}")


def normalise_boxes(x: np.ndarray, valid: dict[int, np.ndarray], mask: np.ndarray | None, opts: ExtractionOptions) -> None:
    """In place, on rows of ``x`` (n, box^3): statistics over mask & in-bounds voxels, pad, mask, invert."""
    sign = np.float32(-1.0 if opts.invert else 1.0)
    interior = np.array([k not in valid for k in range(len(x))])
    if interior.any():
        idx = np.flatnonzero(interior)
        sub = x if interior.all() else x[idx]
        if opts.normalise:
            values = sub if mask is None else sub[:, mask]
            mean = values.mean(axis=1, dtype=np.float64).astype(np.float32)
            sub -= mean[:, None]
            centred = sub if mask is None else sub[:, mask]
            std = np.sqrt(np.einsum("ij,ij->i", centred, centred) / centred.shape[1]).astype(np.float32)
            std[std == 0] = 1.0
            sub *= (sign / std)[:, None]
            if mask is not None:
                sub[:, ~mask] = 0.0
        else:
            if mask is not None:
                sub[:, ~mask] = sub[:, mask].mean(axis=1, dtype=np.float64).astype(np.float32)[:, None]
            if opts.invert:
                sub *= sign
        if not interior.all():
            x[idx] = sub
    for k, inside in valid.items():
        use = inside if mask is None else inside & mask
        if not use.any():  # mask entirely outside the volume: fall back to the in-bounds voxels
            use = inside
        row = x[k]
        mean = np.float32(row[use].mean(dtype=np.float64))
        if opts.normalise:
            row -= mean
            std = np.float32(np.sqrt(np.mean(np.square(row[use], dtype=np.float64))))
            row *= sign / (std if std > 0 else np.float32(1.0))
            row[~use] = 0.0
        else:
            row[~use] = mean
            row *= sign


def drop_stack_rows(path: Path, keep: np.ndarray) -> None:
    """Rewrite the stack ``path`` with the rows ``keep`` (a mask) alone, chunk by chunk."""
    src = np.load(path, mmap_mode="r")
    rows = np.flatnonzero(keep)
    chunk = max(1, CHUNK_BYTES // max(1, src[0].nbytes))
    with atomic_path(path) as tmp:
        dst = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(rows),) + src.shape[1:])
        for lo in range(0, len(rows), chunk):
            dst[lo:lo + chunk] = src[rows[lo:lo + chunk]]
        dst.flush()
        del dst
    del src


def write_extracted(out_dir: Path, table: pd.DataFrame, write_stack: Callable[[Path], np.ndarray],
                    on_non_finite: Callable[[np.ndarray], None]) -> pd.DataFrame:
    """Write ``out_dir/subtomos.npy`` and ``out_dir/particles.star`` together, atomically; return the table.

    ``write_stack(path)`` writes the stack (row i = ``table`` row i) and returns a boolean per row, True where
    the box holds NaN or Inf; those rows leave stack and table after ``on_non_finite(bad)`` (which reports
    them, or raises). A folder made here is removed again when nothing could be written.
    """
    created = not out_dir.exists()
    try:
        with atomic_path(out_dir / "subtomos.npy") as tmp_stack, atomic_path(out_dir / "particles.star") as tmp_star:
            bad = write_stack(tmp_stack)
            if bad.any():
                on_non_finite(bad)
                drop_stack_rows(tmp_stack, ~bad)
                table = table[~bad].reset_index(drop=True)
            write_particles(tmp_star, table)
    except BaseException:
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    return table
