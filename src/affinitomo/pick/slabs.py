"""Stream a memory-mapped tomogram as block-averaged Z slabs with halos.

Only ``bin`` raw planes are converted to float at a time, and the file's pages are
dropped from the resident set above a budget (:class:`affinitomo.io.pages.PageBudget`),
so memory depends on the slab size and the XY size, never on the number of planes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from affinitomo.io.pages import PageBudget


@dataclass(frozen=True)
class Slab:
    """Binned planes ``[start, stop)`` of the tomogram; of those, ``[core_start, core_stop)`` are this slab's own."""

    data: np.ndarray
    start: int
    stop: int
    core_start: int
    core_stop: int

    @property
    def core(self) -> slice:
        """The core planes as a slice of ``data``."""
        return slice(self.core_start - self.start, self.core_stop - self.start)


def binned_shape(shape: tuple[int, int, int], bin: int) -> tuple[int, int, int]:
    """Shape after ``bin x bin x bin`` block averaging (remainders dropped)."""
    return tuple(int(n) // bin for n in shape)  # type: ignore[return-value]


def read_binned(volume: np.ndarray, z0: int, z1: int, bin: int, budget: PageBudget | None = None) -> np.ndarray:
    """Binned planes ``[z0, z1)`` (binned indices) of ``volume`` as float32."""
    _, ny, nx = binned_shape(volume.shape, bin)
    out = np.empty((z1 - z0, ny, nx), dtype=np.float32)
    for k, z in enumerate(range(z0, z1)):
        raw = np.asarray(volume[z * bin : (z + 1) * bin, : ny * bin, : nx * bin], dtype=np.float32)
        if bin == 1:
            out[k] = raw[0]
        else:
            out[k] = raw.reshape(bin, ny, bin, nx, bin).mean(axis=(0, 2, 4))
        if budget is not None:
            budget.check()
    return out


def iter_slabs(volume: np.ndarray, bin: int, core: int, halo: int) -> Iterator[Slab]:
    """Binned slabs of ``core`` planes each, with up to ``halo`` real planes either side.

    Halo planes are re-read rather than kept, so only one slab is ever in memory.
    """
    nz = binned_shape(volume.shape, bin)[0]
    core = max(1, int(core))
    budget = PageBudget()
    budget.watch(volume)
    try:
        for c0 in range(0, nz, core):
            c1 = min(nz, c0 + core)
            s0, s1 = max(0, c0 - halo), min(nz, c1 + halo)
            yield Slab(read_binned(volume, s0, s1, bin, budget), s0, s1, c0, c1)
            budget.release()
    finally:
        budget.forget(volume)
