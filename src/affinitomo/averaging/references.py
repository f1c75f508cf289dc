"""The ``references`` stage: one reference per known class, built from its labelled particles alone.

Where there are no templates (template-free mode) the known classes still have labelled
particles. Each class's labelled particles are aligned to each other without a reference, as the
unknown groups are (:func:`affinitomo.averaging.align.build_reference`: random first references,
rounds of matching and averaging, successive halving by score), and their masked average is the
class's reference. The references are written as MRC maps (``<class>.mrc``, the stack's voxel
size and box), so the match stage uses them as it uses templates: each particle's best score per
reference and its pose against it. A reference made from the data carries the tomograms' CTF,
missing wedge and noise filter already, so it is matched without a CTF on it.

Why: a reference built from the cell's own particles matches what is in the cell, where a
template from a model or a purified map does not, and it needs nothing but the labels.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from affinitomo.averaging.align import AlignOptions, build_reference
from affinitomo.errors import InputError

log = logging.getLogger(__name__)

#: the summary next to the maps
SUMMARY = "references.json"


@dataclass
class ReferenceOptions:
    """``min_particles``: classes with fewer labelled particles get no reference; ``align``: the
    reference-free alignment's options (``align_`` keys of the cluster stage, ``seed``)."""

    min_particles: int = 3
    align: AlignOptions = field(default_factory=AlignOptions)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: Any = None) -> "ReferenceOptions":
        names = {f.name for f in fields(AlignOptions)}
        unknown = sorted(set(values) - names - {"min_particles"})
        if unknown:
            raise InputError(source, unknown[0], f"a references option: min_particles or one of {sorted(names)}")
        minimum = values.get("min_particles", cls.min_particles)
        if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 1:
            raise InputError(source, "min_particles", f"a positive integer, got {minimum!r}")
        return cls(minimum, AlignOptions.from_dict({k: v for k, v in values.items() if k in names}, source))


def class_references(stack: Any, labels: np.ndarray, labelled: np.ndarray, voxel_size: float,
                     options: ReferenceOptions, device: str = "cpu") -> dict[str, tuple[np.ndarray, int, float]]:
    """Per labelled class with at least ``min_particles`` particles: (reference, particles, mean score
    of the members against it), by reference-free alignment of its labelled particles."""
    from affinitomo.progress import progress_bar

    names = sorted(set(np.asarray(labels)[labelled].astype(str).tolist()))
    out: dict[str, tuple[np.ndarray, int, float]] = {}
    for name in progress_bar(names, desc="class references", unit="class", disable=len(names) < 2):
        rows = np.flatnonzero(labelled & (labels == name))
        if rows.size < options.min_particles:
            log.warning("class %s: %d labelled particles, fewer than min_particles %d: no reference", name,
                        rows.size, options.min_particles)
            continue
        reference, score = build_reference(np.asarray(stack[rows], dtype=np.float32), voxel_size, options.align,
                                           device=device)
        log.info("class %s: reference from %d labelled particles, mean score %.3f", name, rows.size, score)
        out[name] = (reference, int(rows.size), score)
    return out


def run_references(stack_paths: Sequence[str | Path], particles_paths: Sequence[str | Path], out_dir: str | Path,
                   options: ReferenceOptions | None = None, device: str = "auto") -> dict[str, Any]:
    """Read the stacks and tables (one per tomogram, in the same order), build :func:`class_references`
    and write ``<class>.mrc`` and ``references.json`` to ``out_dir``. Returns the summary."""
    from affinitomo.density.score import resolve_device
    from affinitomo.io.atomic import atomic_path
    from affinitomo.io.particles import concat_tables
    from affinitomo.io.particles import read_particles
    from affinitomo.io.stacks import open_stacks
    from affinitomo.io.stacks import stack_voxel_size
    from affinitomo.io.volumes import write_volume
    from affinitomo.labels import labelled_mask

    options = options or ReferenceOptions()
    if len(stack_paths) != len(particles_paths):
        raise InputError("--stack", None, f"one stack per --particles table; got {len(stack_paths)} stacks and "
                                          f"{len(particles_paths)} tables")
    table = concat_tables([read_particles(p) for p in particles_paths], list(particles_paths))
    stack = open_stacks(list(stack_paths), len(table))
    voxel = stack_voxel_size(table, particles_paths[0])
    labelled = labelled_mask(table)
    if not labelled.any():
        raise InputError(particles_paths[0], "afmClassName", "labelled particles (a class name for some rows): "
                                                              "the references are built from them")
    labels = table["afmClassName"].fillna("").astype(str).str.strip().to_numpy()
    built = class_references(stack, labels, labelled, voxel, options, resolve_device(device))
    if not built:
        raise InputError(particles_paths[0], "afmClassName",
                         f"at least {options.min_particles} labelled particles of some class (min_particles)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (reference, _, _) in built.items():
        write_volume(out_dir / f"{name}.mrc", reference, voxel)
    for stale in out_dir.glob("*.mrc"):  # an earlier run's classes must not stay among the templates
        if stale.stem not in built:
            stale.unlink()
    summary = {"voxel_size": voxel, "box": int(stack.shape[-1]),
               "classes": {name: {"particles": n, "mean_score": round(score, 4)}
                           for name, (_, n, score) in built.items()},
               "skipped": sorted(set(labels[labelled].tolist()) - set(built)),
               "options": {"min_particles": options.min_particles, **{f.name: getattr(options.align, f.name)
                                                                       for f in fields(AlignOptions)}}}
    with atomic_path(out_dir / SUMMARY) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1))
    log.info("wrote %d class references to %s", len(built), out_dir)
    return summary
