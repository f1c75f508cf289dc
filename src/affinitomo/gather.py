"""Gather per-tomogram outputs into one particle set: tables and latents, stacks by reference.

The workflow extracts and encodes each tomogram in its own job (so a cluster runs them in
parallel and a new tomogram reruns only its own jobs). UMAP and clustering then need every
particle at once: :func:`gather` concatenates the per-tomogram tables and latents (small) in
the order given, which is also the row order of the per-tomogram stacks taken together
(:class:`affinitomo.io.stacks.StackRows`); the stacks themselves are never copied.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from affinitomo.errors import InputError
from affinitomo.io.latents import Latents, align_to_table, read_latents, write_latents
from affinitomo.io.particles import concat_tables, read_particles, write_particles

log = logging.getLogger(__name__)


def concat_latents(latent_paths: list[str | Path], tables: list[pd.DataFrame],
                   table_paths: list[str | Path]) -> Latents:
    """Latents of each tomogram aligned to its table's rows, concatenated."""
    parts = [align_to_table(read_latents(lp), t, lp, tp) for lp, t, tp in zip(latent_paths, tables, table_paths)]
    rotations = [p.rotation for p in parts]
    if any(r is None for r in rotations) and not all(r is None for r in rotations):
        raise InputError(latent_paths[0], "rotation", "the same model for every tomogram (some latents have "
                                                       "rotations, some do not)")
    dims = {p.mu.shape[1] for p in parts}
    if len(dims) != 1:
        raise InputError(latent_paths[0], "mu", f"one latent size for every tomogram, got {sorted(dims)}")
    return Latents(
        np.concatenate([p.particle_id for p in parts]),
        np.concatenate([p.mu for p in parts]),
        np.concatenate([p.logvar for p in parts]),
        np.concatenate([p.pose for p in parts]),
        None if rotations[0] is None else np.concatenate(rotations),
    )


def gather(table_paths: list[str | Path], out_table: str | Path | None, latent_paths: list[str | Path] | None = None,
           out_latents: str | Path | None = None) -> dict[str, Path]:
    """Write the gathered table and/or latents. Every input is checked before anything is written."""
    if out_table is None and out_latents is None:
        raise InputError("--out-particles", None, "an output: --out-particles and/or --out-latents")
    if latent_paths is not None and len(latent_paths) != len(table_paths):
        raise InputError("--latents", None, f"one latents file per table ({len(table_paths)}), got {len(latent_paths)}")
    if (latent_paths is None) != (out_latents is None):
        raise InputError("--out-latents", None, "given together with --latents")
    tables = [read_particles(p) for p in table_paths]
    table = concat_tables(tables, table_paths)
    latents = None if latent_paths is None else concat_latents(latent_paths, tables, table_paths)
    written = {} if out_table is None else {"particles": write_particles(out_table, table)}
    if latents is not None:
        written["latents"] = write_latents(out_latents, latents)
    log.info("gathered %d particles from %d tables", len(table), len(table_paths))
    return written
