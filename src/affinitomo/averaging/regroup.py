"""Unknown particles grouped again by how well they match references made from themselves.

The first grouping of the particles called 'unknown' clusters their features: latents and
template scores, both shaped by the known molecules. Unseen molecules that look alike through
those features end up in one group (SHREC-like set, SNR 0.1, split 0: 1u6g, 2cg9 and 3cf3 shared
two groups). Each unseen molecule still has one 3-D structure, and a particle's correlation with
an average of its own kind, at its best rotation, says so. As in reference-free 3-D
classification, the references come from the data:

1. the unknown particles are over-split: Louvain at ``align_regroup_resolution`` (default 1.0,
   twice the grouping's 0.5) on the same features gives smaller and purer subgroups;
2. each of the largest ``align_regroup_references`` subgroups of at least ``align_min_particles``
   is aligned to itself (:func:`affinitomo.averaging.align.build_reference`, one random start,
   ``align_rounds`` rounds): one reference per subgroup;
3. every unknown particle is matched against every reference (the match stage's rotation
   search with the missing wedge): a vector of scores, the unseen molecules' counterpart of the
   template scores of the known ones;
4. the unknown particles are clustered again (the grouping's own options) on their features
   together with the standardised reference scores.

The subgroup references are not masked (``align_mask``): a masked reference keeps the molecule's
core, where near-twins agree, and at SNR 0.03 (split 2) the regrouping then merged 3gl1 and 3h84
into one group, which the unmasked references had kept apart; the final groups' references, which
give the poses and the reassignment, are masked.

Two subgroups of one molecule give similar references, so their scores agree and the final
clustering joins them again; subgroups of different molecules give references that separate
them. Measured on the SHREC-like set (``benchmarks/bench_shrec.py``), SNR 0.1, 3 splits, with
:mod:`affinitomo.averaging.align`'s reassignment after it: 12 of 12 unseen molecules got a group > 80 %
pure holding most of them (7 of 12 without), group ARI 0.94 (0.75 without). Cost: one reference per
subgroup (~20 s for ~70 particles) and one match of every unknown particle against every reference
(~100 s for 400 particles x 6 references) on 2 cores. Figures: docs/benchmarks.md, "How the cluster
stage's defaults were chosen" ("Regrouping the unknown particles by their own references").
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from affinitomo.averaging.align import AlignOptions, build_reference, match_references
from affinitomo.grouping import ClusterOptions, cluster_points, standardize_columns

log = logging.getLogger(__name__)


def regroup_unknown(stack: Any, features: np.ndarray, unknown: np.ndarray, voxel_size: float,
                    cluster: ClusterOptions, align: AlignOptions,
                    device: str = "cpu") -> tuple[np.ndarray | None, dict[str, Any]]:
    """Groups (0.., by size) of the ``unknown`` rows of ``features``, or None when fewer than two
    references could be made (too few unknown particles). Returns (labels, info)."""
    from dataclasses import replace

    from affinitomo.progress import progress_bar

    rows = np.flatnonzero(np.asarray(unknown, dtype=bool))
    x = np.asarray(features, dtype=np.float64)[rows]
    info: dict[str, Any] = {"resolution": align.align_regroup_resolution}
    if len(rows) < 2 * align.align_min_particles:
        info["skipped"] = f"{len(rows)} unknown particles: fewer than 2 x align_min_particles"
        return None, info
    split, _ = cluster_points(x, replace(cluster, resolution=align.align_regroup_resolution))
    ids, counts = np.unique(split[split >= 0], return_counts=True)
    big = [int(g) for g, c in sorted(zip(ids, counts), key=lambda t: -t[1])
           if c >= align.align_min_particles][:align.align_regroup_references]
    info["subgroups"] = [int(c) for c in sorted(counts, reverse=True)]
    if len(big) < 2:
        info["skipped"] = f"{len(big)} subgroup(s) of at least {align.align_min_particles} particles"
        return None, info
    references = []
    unmasked = replace(align, align_mask=False, align_pose_mean=False)  # only the scores are used
    for g in progress_bar(big, desc="regroup: subgroup references", unit="group"):
        members = rows[split == g]  # increasing, as the stack is read best
        reference, score = build_reference(np.asarray(stack[members], dtype=np.float32), voxel_size, unmasked,
                                           starts=1, device=device)
        log.info("regroup: subgroup of %d particles, reference score %.3f", members.size, score)
        references.append(reference)
    scores, _ = match_references(stack, rows, np.stack(references), voxel_size, unmasked, device)
    labels, found = cluster_points(np.hstack([x, standardize_columns(scores)]), cluster)
    info.update(references=len(references), n_groups=found["n_clusters"], n_noise=found["n_noise"])
    log.info("regroup: %d unknown particles, %d subgroups, %d references -> %d groups", len(rows), len(ids),
             len(references), found["n_clusters"])
    return labels, info
