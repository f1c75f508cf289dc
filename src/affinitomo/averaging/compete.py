"""Known classes and unknown groups compete for their particles (multi-reference assignment).

The open-set classifier decides known or unknown from features (latents and template scores).
Two small molecules look alike through those features at low SNR: on the SHREC-like set at SNR
0.03 (split 2) 14 of 100 particles of the unseen 1s3x were called the known 3qm1, and 18 of 40
unlabelled 3qm1 particles were called unknown and joined 1s3x's group. Their 3-D averages tell
them apart, as in multi-reference classification:

- each known class gets a reference from the data: the average of its labelled particles whose
  best template is their class, at template matching's poses (so in the template's frame),
  masked as the unknown groups' references (:func:`affinitomo.averaging.align.masked_reference`);
- every unlabelled particle assigned a known class (with a reference) is matched against its
  class's reference and every aligned unknown group's reference; every unlabelled member of an
  aligned group against its group's reference and the reference of its best template's class;
- each goes to the best of its references: into the group, called unknown, at the pose found
  against the group's reference; or into the class, where it takes template matching's pose (its
  best template is the class). A reference made from the data carries the imaging (CTF, wedge, noise filter)
  the templates lack, and the two sides are made and masked alike, so their scores compare.

On that split the two references put 100 of 100 1s3x particles in the group and 38 of 40 3qm1
particles in the class; the cluster stage with this step against without it
(``benchmarks/bench_shrec.py``): known macro F1 0.94 -> 0.99, 1s3x called unknown 0.86 -> 0.99, known
particles called unknown 7.8 -> 0.9 %, group ARI 0.87 -> 0.95. Cost: about 60 s of the stage's 576 s
for 1 200 particles, 8 classes and 5 groups on 2 cores; it grows linearly with the particles and the
groups. Figures: docs/benchmarks.md, "SHREC-like set, end to end", "How the cluster stage's defaults
were chosen" ("Known classes compete with unknown groups").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from affinitomo.averaging.align import AlignedGroup, AlignOptions, group_reference, match_references

log = logging.getLogger(__name__)


@dataclass
class Competed:
    """Per row the new name (class or 'unknown') and group id (-1 outside groups); the rows moved
    into groups with their poses there."""

    assigned: np.ndarray
    groups: np.ndarray
    into_groups: np.ndarray
    rotation: np.ndarray  # (len(into_groups), 3, 3)
    counts: dict[str, int]


def class_references(stack: Any, labels: np.ndarray, labelled: np.ndarray, best_template: np.ndarray,
                     rotations: np.ndarray, voxel_size: float, options: AlignOptions) -> dict[str, np.ndarray]:
    """Per known class with at least ``align_min_particles`` labelled particles whose best template
    is their class: the masked average of those particles at their template-matching poses."""
    out = {}
    for name in sorted(set(labels[labelled].tolist())):
        rows = np.flatnonzero(labelled & (labels == name) & (best_template == name))
        if rows.size < options.align_min_particles:
            continue
        out[name] = group_reference(stack, rows, rotations[rows], voxel_size, options)
    return out


def compete(stack: Any, assigned: np.ndarray, groups: np.ndarray, labelled: np.ndarray,
            references: dict[str, np.ndarray], aligned: dict[int, AlignedGroup], best_template: np.ndarray,
            voxel_size: float, options: AlignOptions, unknown_name: str, device: str = "cpu") -> Competed:
    """Move unlabelled particles between known classes and aligned unknown groups (module docstring).

    ``groups``: the unknown group id per row (-1 elsewhere); ``aligned``: :func:`align_unknown_groups`'s
    groups (their ``reference``); ``references``: :func:`class_references`.
    """
    assigned = np.asarray(assigned).astype(object).copy()
    groups = np.asarray(groups, dtype=np.int64).copy()
    ids = sorted(aligned)
    moved_rows: list[np.ndarray] = []
    moved_rot: list[np.ndarray] = []
    counts = {"to_groups": 0, "to_classes": 0}
    if not ids or not references:
        return Competed(assigned, groups, np.zeros(0, dtype=np.int64), np.zeros((0, 3, 3)), counts)
    group_refs = np.stack([aligned[g].reference for g in ids])
    new_assigned, new_groups = assigned.copy(), groups.copy()
    for name, reference in references.items():
        rows = np.flatnonzero(~labelled & (assigned == name))
        if rows.size:  # the class's particles: their class's reference against every group's
            scores, rot = match_references(stack, rows, np.concatenate([reference[None], group_refs]), voxel_size,
                                           options, device)
            best = scores.argmax(axis=1)
            go = best > 0
            new_assigned[rows[go]] = unknown_name
            new_groups[rows[go]] = np.asarray(ids)[best[go] - 1]
            moved_rows.append(rows[go])
            moved_rot.append(rot[go, best[go]])
            counts["to_groups"] += int(go.sum())
        for i, g in enumerate(ids):  # the group's members whose best template is this class
            rows = np.flatnonzero(~labelled & (groups == g) & (best_template == name))
            if not rows.size:
                continue
            scores, rot = match_references(stack, rows, np.stack([group_refs[i], reference]), voxel_size, options,
                                           device)
            go = scores[:, 1] > scores[:, 0]
            new_assigned[rows[go]] = name
            new_groups[rows[go]] = -1
            counts["to_classes"] += int(go.sum())
    log.info("known classes against unknown groups: %d particles moved into groups, %d into classes",
             counts["to_groups"], counts["to_classes"])
    moved = np.concatenate(moved_rows) if moved_rows else np.zeros(0, dtype=np.int64)
    rotation = np.concatenate(moved_rot) if moved_rot else np.zeros((0, 3, 3))
    return Competed(new_assigned, new_groups, moved, rotation, counts)
