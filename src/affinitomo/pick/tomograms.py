"""Picking a set of tomograms, reference-free (:mod:`.blobs`) or with templates (:mod:`.template`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from affinitomo.errors import InputError
from affinitomo.pick.blobs import pick_tomogram


def pick_tomograms(paths: Sequence[str | Path], templates: str | Path | None = None, **kwargs) -> pd.DataFrame:
    """:func:`pick_tomogram` on each tomogram (or, given a ``templates`` folder,
    :func:`affinitomo.pick.template.pick_tomogram_templates`); one table with ids unique across it."""
    stems: dict[str, Path] = {}
    for p in map(Path, paths):
        if p.stem in stems:
            raise InputError(p, "rlnTomoName", f"tomograms with distinct file stems; {p.stem!r} is also {stems[p.stem]}")
        stems[p.stem] = p
    if templates is not None:
        from affinitomo.pick.template import pick_tomogram_templates  # torch: loaded when used

        tables = [pick_tomogram_templates(p, templates, **kwargs) for p in stems.values()]
    else:
        tables = [pick_tomogram(p, **kwargs) for p in stems.values()]
    table = pd.concat(tables, ignore_index=True)
    table["afmParticleId"] = np.arange(len(table), dtype=np.int64)
    return table


def ids_from_names(names: np.ndarray) -> np.ndarray:
    """Particle ids unique across separately picked tomograms: crc32(name) * 2^24 + rank in the tomogram."""
    import zlib

    names = np.asarray(names, dtype=str)
    ids = np.empty(len(names), dtype=np.int64)
    for name in np.unique(names):
        rows = np.flatnonzero(names == name)
        if len(rows) >= 1 << 24:
            raise InputError(name, "afmParticleId", f"fewer than {1 << 24} picks per tomogram, got {len(rows)}")
        ids[rows] = (zlib.crc32(name.encode()) << 24) + np.arange(len(rows), dtype=np.int64)
    return ids
