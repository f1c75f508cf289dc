"""Class averages: the mean subtomogram of each group, streamed from the extracted stack.

With rotations (from the model's explicit pose) each subtomogram is first rotated by the
inverse pose, A^T, into the class's common (reference) frame; otherwise it is averaged as
extracted. Row i of the stack holds the particle at position i of the extracted table.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from affinitomo.geometry import rotate_volume
from affinitomo.io.stacks import open_stacks
from affinitomo.io.volumes import write_volume

log = logging.getLogger(__name__)


def class_averages(stack: np.ndarray, groups: np.ndarray, rotations: np.ndarray | None = None,
                   chunk: int = 256) -> dict[int, tuple[np.ndarray, int]]:
    """Mean volume per group id (ids < 1 skipped), reading the stack in row order, chunk by chunk."""
    from affinitomo.progress import progress_bar

    groups = np.asarray(groups, dtype=np.int64)
    box = stack.shape[1:]
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    wanted = np.flatnonzero(groups > 0)
    for start in progress_bar(range(0, wanted.size, chunk), desc="class averages", unit="chunk",
                      disable=wanted.size <= chunk):
        rows = wanted[start:start + chunk]
        data = np.asarray(stack[rows], dtype=np.float32)
        for row, vol in zip(rows, data):
            if rotations is not None:
                vol = rotate_volume(vol, rotations[row].T)
            g = int(groups[row])
            if g not in sums:
                sums[g] = np.zeros(box, dtype=np.float64)
                counts[g] = 0
            sums[g] += vol
            counts[g] += 1
    return {g: ((sums[g] / counts[g]).astype(np.float32), counts[g]) for g in sums}


def write_averages(out_dir: Path, stack_path: str | Path | list[str | Path], numbers: np.ndarray, names: dict[int, str],
                   rotations: np.ndarray | None, voxel_size: float | None) -> list[Path]:
    """Write ``out_dir/averages/<name>.mrc`` for every numbered group."""
    from affinitomo.labels import safe_name

    stack = open_stacks(stack_path, len(numbers))
    averages = class_averages(stack, numbers, rotations)
    folder = out_dir / "averages"
    paths = []
    for g, (mean, n) in sorted(averages.items()):
        path = folder / f"{safe_name(names[g])}.mrc"
        write_volume(path, mean, voxel_size)
        log.info("average of %d particles -> %s", n, path)
        paths.append(path)
    return paths
