"""Latents in, 2D UMAP embedding out.

The UMAP is fitted on the labelled (training) particles' latent means and then
applied (``transform``) to every other particle, so that later runs on new
tomograms can reuse the same map (``umap.npz``, :mod:`affinitomo.umap_file`). With no labelled
particles, or with ``fit_on="all"``, it is fitted on every particle. Given an existing ``umap.npz``
(``affinitomo embed --umap``), nothing is fitted: every particle is transformed, so a
second run's particles land on the first run's map.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affinitomo.errors import InputError
from affinitomo.io.embedding import write_embedding
from affinitomo.io.latents import align_to_table, read_latents
from affinitomo.labels import labelled_mask
from affinitomo.options import from_known_keys
from affinitomo.umap_file import NAME as UMAP_NAME
from affinitomo.umap_file import StoredUmap, make_umap, read_umap, save_umap

log = logging.getLogger(__name__)


@dataclass
class EmbedOptions:
    """UMAP settings. Defaults are umap-learn's own (n_neighbors=15, min_dist=0.1)."""

    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "euclidean"
    n_components: int = 2
    fit_on: str = "labelled"  # "labelled" or "all"
    seed: int = 0
    max_fit: int = 50000  # fit on a random subset of at most this many particles (transform the rest)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: Any = None) -> "EmbedOptions":
        opts = from_known_keys(cls, values, source, "an embed option")
        if opts.fit_on not in ("labelled", "all"):
            raise InputError(source, "fit_on", "'labelled' or 'all'")
        if opts.n_neighbors < 2:
            raise InputError(source, "n_neighbors", "an integer >= 2")
        if opts.max_fit < 3:
            raise InputError(source, "max_fit", "an integer >= 3")
        return opts


def choose_fit_rows(labelled: np.ndarray, options: EmbedOptions) -> np.ndarray:
    """Indices of the particles the UMAP is fitted on (labelled ones unless too few or asked)."""
    n = labelled.shape[0]
    rows = np.flatnonzero(labelled) if options.fit_on == "labelled" else np.arange(n)
    if rows.size < 3:
        if options.fit_on == "labelled":
            log.info("only %d labelled particles: fitting the UMAP on all %d particles", rows.size, n)
        rows = np.arange(n)
    if rows.size > options.max_fit:
        rng = np.random.default_rng(options.seed)
        rows = np.sort(rng.choice(rows, options.max_fit, replace=False))
    return rows


def fit_embedding(mu: np.ndarray, fit_rows: np.ndarray, options: EmbedOptions) -> tuple[Any, np.ndarray]:
    """Fit UMAP on ``mu[fit_rows]`` and transform the other rows. Returns (model, embedding (N, d))."""
    n_fit = int(fit_rows.size)
    if n_fit < 3:
        raise InputError(None, "mu", f"at least 3 particles to fit a UMAP, got {n_fit}")
    n_neighbors = min(options.n_neighbors, n_fit - 1)
    if n_neighbors != options.n_neighbors:
        log.info("n_neighbors clipped from %d to %d (only %d fit particles)", options.n_neighbors,
                 n_neighbors, n_fit)
    # Spectral initialisation needs more points than components + 1; random init otherwise.
    init = "spectral" if n_fit > options.n_components + 2 * n_neighbors else "random"
    model = make_umap({"n_neighbors": n_neighbors, "min_dist": options.min_dist, "metric": options.metric,
                       "n_components": options.n_components, "random_state": options.seed, "init": init,
                       "transform_seed": options.seed})
    x = np.ascontiguousarray(mu, dtype=np.float32)
    log.info("fitting UMAP on %d of %d particles (n_neighbors=%d, min_dist=%g, metric=%s, seed=%d)",
             n_fit, len(x), n_neighbors, options.min_dist, options.metric, options.seed)
    embedding = np.empty((len(x), options.n_components), dtype=np.float32)
    embedding[fit_rows] = model.fit_transform(x[fit_rows])
    rest = np.setdiff1d(np.arange(len(x)), fit_rows)
    if rest.size:
        log.info("transforming the other %d particles", rest.size)
        embedding[rest] = transform_in_batches(model, x[rest])
    return model, embedding


def transform_in_batches(model: Any, x: np.ndarray, batch: int = 20000) -> np.ndarray:
    """``model.transform`` in batches (bounded memory) with a progress bar."""
    from affinitomo.progress import progress_bar

    out = []
    for start in progress_bar(range(0, len(x), batch), desc="umap transform", unit="batch", disable=len(x) <= batch):
        out.append(np.asarray(model.transform(x[start:start + batch]), dtype=np.float32))
    return np.concatenate(out, axis=0)


def run_embed(latents_path: str | Path, particles_path: str | Path, out_dir: str | Path,
              options: EmbedOptions | None = None, umap_path: str | Path | None = None,
              trust_pickle: bool = False) -> dict[str, Path]:
    """The ``embed`` stage: read latents and table, fit/apply UMAP, write umap.npz, embedding.csv.

    With ``umap_path`` (a ``umap.npz`` of an earlier run) the model is only applied
    (``transform``), never refitted; it is written to ``out_dir/umap.npz`` too, so the folder is
    complete. ``trust_pickle``: ``umap_path`` may be a umap.pkl of the older pickle format (it is
    read, and written as umap.npz).
    """
    from affinitomo.io.particles import read_particles

    options = options or EmbedOptions()
    out_dir = Path(out_dir)
    table = read_particles(particles_path)
    latents = align_to_table(read_latents(latents_path), table, latents_path, particles_path)
    if umap_path is not None:
        stored = read_umap(umap_path, latent_dims=latents.mu.shape[1], trust_pickle=trust_pickle)
        log.info("applying %s to %d particles (no fit)", umap_path, len(latents))
        embedding = transform_in_batches(stored.model(), np.ascontiguousarray(latents.mu, dtype=np.float32))
    else:
        fit_rows = choose_fit_rows(labelled_mask(table), options)
        model, embedding = fit_embedding(latents.mu, fit_rows, options)
        stored = StoredUmap.of(model)
    saved = save_umap(out_dir / UMAP_NAME, stored)
    csv = write_embedding(out_dir / "embedding.csv", latents.particle_id, embedding)
    log.info("wrote %s and %s", saved, csv)
    return {"umap": saved, "embedding": csv}
