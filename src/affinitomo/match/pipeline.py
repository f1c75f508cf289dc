"""The ``match`` stage: stack + table + templates -> classes, scores and poses on disk."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from affinitomo.density.score import resolve_device
from affinitomo.density.templates import ctf_weighted, load_templates
from affinitomo.errors import InputError
from affinitomo.geometry import matrix_to_euler
from affinitomo.io.particles import ANGLES, read_particles, write_particles
from affinitomo.io.scores import write_scores
from affinitomo.io.stacks import nonfinite_rows, open_npy_stack, stack_voxel_size
from affinitomo.match.assign import assign, label_indices, unknown_threshold
from affinitomo.match.settings import MatchOptions, write_settings
from affinitomo.search.stack import match_stack

log = logging.getLogger(__name__)


@dataclass
class MatchResult:
    """The written table, the score matrix (N, C), the class names and the per-class unknown thresholds."""

    table: pd.DataFrame
    scores: np.ndarray
    classes: list[str]
    threshold: np.ndarray | None
    seconds: float


def open_stack(path: Path, table: pd.DataFrame) -> np.ndarray:
    """Memory-map a stack (N, B, B, B) and check it against the table: one row per table row,
    boxes of at least 8 voxels, every voxel finite (a particle without data gets no class)."""
    stack = open_npy_stack(path)
    if stack.shape[0] != len(table):
        raise InputError(path, "shape", f"{len(table)} subtomograms, one per table row, got {stack.shape[0]}")
    if stack.shape[1] < 8:
        raise InputError(path, "shape", f"boxes of at least 8 voxels, got {stack.shape[1]}")
    bad = nonfinite_rows(stack)
    if bad.size:
        ids = table["afmParticleId"].to_numpy()[bad[:5]].tolist()
        raise InputError(path, "values", f"finite voxels in every subtomogram; {bad.size} rows hold NaN or Inf "
                                         f"(rows {bad[:5].tolist()}, afmParticleId {ids}): extract them again "
                                         f"('affinitomo extract' skips such boxes)")
    return stack


def match_particles(
    stack_path: str | Path, particles_path: str | Path, templates_dir: str | Path, out_dir: str | Path,
    options: MatchOptions | None = None, progress: bool = True,
) -> MatchResult:
    """Classify the stack's particles by template matching; write ``particles.star``, ``scores.csv`` and
    ``match.json`` (the settings, :mod:`.settings`).

    With ``options.ctf``, the templates carry the tomograms' CTF (:func:`.templates.ctf_weighted`).
    Table: the input canonical table with ``afmClassName`` (template name or 'unknown'),
    ``rlnClassNumber`` (1-based in sorted template order, 0 = unknown), ``afmMatchScore``,
    ``afmMatchTemplate`` (the best template, also for 'unknown' particles),
    the pose of the best template as RELION angles and ``afmMatchShiftX/Y/Z`` (voxels of the
    stack: the template centre lies at the coordinate plus this shift). Particles labelled
    in the input (``afmClassName``) set the unknown thresholds: per class, the
    ``unknown_percentile``-th percentile of its labelled particles' scores for it
    (:func:`.assign.unknown_threshold`); without labels nothing is unknown.
    """
    opts = options or MatchOptions()
    t0 = time.perf_counter()
    stack_path, particles_path, out_dir = Path(stack_path), Path(particles_path), Path(out_dir)
    table = read_particles(particles_path)
    stack = open_stack(stack_path, table)
    voxel = stack_voxel_size(table, particles_path)
    if not 0 <= opts.unknown_percentile < 100:
        raise InputError(None, "unknown_percentile", f"a percentile in [0, 100), got {opts.unknown_percentile}")
    if opts.ctf is not None:
        opts.ctf.validate()
    classes, templates, radii = load_templates(templates_dir, voxel, stack.shape[-1], opts.search.resolution)
    if opts.ctf is not None:
        templates = ctf_weighted(templates, voxel, opts.ctf)
        log.info("templates weighted by the CTF (%.3g µm underfocus%s)", opts.ctf.defocus_um,
                 ", phase-flipped" if opts.ctf.phase_flip else "")
    own = label_indices(table["afmClassName"].to_numpy(), classes, str(particles_path))
    log.info("%d particles (%d labelled), %d templates, %d^3 at %.3g Å", len(table), int((own >= 0).sum()),
             len(classes), stack.shape[-1], voxel)
    result = match_stack(stack, templates, voxel, radii, opts.search, must_refine=own,
                         device=resolve_device(opts.device), progress=progress)
    bad = np.flatnonzero(~np.isfinite(result.scores).all(axis=1))
    if bad.size:  # finite data gives finite scores; anything else is not classified
        raise InputError(stack_path, "values", f"subtomograms with finite template scores; {bad.size} rows have "
                                               f"none (rows {bad[:5].tolist()})")
    threshold = unknown_threshold(result.scores, own, opts.unknown_percentile, opts.per_class_threshold)
    names, numbers, best = assign(result.scores, classes, threshold)
    rows = np.arange(len(table))
    out = table.copy()
    out["afmClassName"] = names.astype(str)
    out["rlnClassNumber"] = numbers
    out["afmMatchScore"] = result.scores[rows, best]
    out["afmMatchTemplate"] = np.asarray(classes, dtype=object)[best]  # best template, even when 'unknown'
    out[ANGLES] = matrix_to_euler(result.matrices[rows, best])
    for i, axis in enumerate("XYZ"):
        out[f"afmMatchShift{axis}"] = result.shifts[rows, best, i]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_scores(out_dir / "scores.csv", table["afmParticleId"].to_numpy(), classes, result.scores)
    write_particles(out_dir / "particles.star", out)
    write_settings(out_dir, opts, templates_dir)
    seconds = time.perf_counter() - t0
    log.info("matched %d particles in %.1f s: %d unknown (thresholds %s)", len(table), seconds,
             int((numbers == 0).sum()), "none" if threshold is None else np.round(threshold, 3).tolist())
    return MatchResult(out, result.scores, classes, threshold, seconds)
