"""The average step (``affinitomo average``): 3-D alignment of the classify step's groups, and the results table.

From the classify step's output (:mod:`affinitomo.io.classified`) and the subtomogram stack:
the unknown particles regrouped by references of their own subgroups (:mod:`~affinitomo.averaging.regroup`),
the unknown groups aligned to themselves (:mod:`~affinitomo.averaging.align`), known classes and unknown
groups competing for their particles (:mod:`~affinitomo.averaging.compete`), changed groups refreshed,
each particle's final pose (:mod:`~affinitomo.averaging.poses`), and the averages
(:mod:`~affinitomo.averaging.averages`). Writes ``particles.star``, ``classes.csv``, ``classes/*.star``,
``averages/*.mrc`` and, for the report step, ``average/poses.npz`` (assigned class, class number,
cluster, rotation and pose source per particle, exactly) and ``average/average.json`` (the
clustering info with regrouping and competition, the alignment per group, the options).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from affinitomo.averaging.align import AlignedGroup, AlignOptions
from affinitomo.errors import InputError
from affinitomo.io.averaged import ARRAYS, FOLDER, INFO

log = logging.getLogger(__name__)


def moved_clusters(clusters: np.ndarray, before: np.ndarray, after: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Cluster ids after known classes and unknown groups competed: a row moved into a group takes the
    group's id; a row moved into a known class the most common id among that class's other rows."""
    from affinitomo.labels import UNKNOWN

    clusters = np.asarray(clusters, dtype=np.int64).copy()
    changed = np.asarray(before).astype(str) != np.asarray(after).astype(str)
    into_group = changed & (after == UNKNOWN)
    clusters[into_group] = groups[into_group]
    for name in np.unique(after[changed & (after != UNKNOWN)]):
        stay = (after == name) & ~changed
        ids, counts = np.unique(clusters[stay], return_counts=True)
        clusters[changed & (after == name)] = ids[counts.argmax()] if ids.size else -1
    return clusters


def check_average_inputs(particles_path: str | Path, stack_path: str | Path | list[str | Path] | None,
                         match_poses: str | Path | list[str | Path] | None) -> None:
    """Read and check the average step's own inputs (the stack's rows, the match poses)."""
    from affinitomo.io.stacks import open_stacks
    from affinitomo.averaging.poses import read_match_poses
    from affinitomo.io.particles import read_particles

    stacks = [stack_path] if isinstance(stack_path, (str, Path)) else stack_path
    for s in stacks or []:
        if not Path(s).is_file():
            raise InputError(s, None, "the subtomogram stack file (not found)")
    table = read_particles(particles_path)
    if stack_path is not None:
        open_stacks(stack_path, len(table))
    if match_poses:
        read_match_poses(match_poses, table, particles_path)


def average_groups(latents_path: str | Path, particles_path: str | Path, out_dir: str | Path, *,
                   stack_path: str | Path | list[str | Path] | None = None,
                   match_poses: str | Path | list[str | Path] | None = None,
                   options: AlignOptions | None = None) -> list[Path]:
    """The average step on the classify step's output in ``out_dir``; returns the files written.

    Without the stack (or without ``afmPixelSize``) nothing is aligned and every particle keeps the
    pose of :func:`~affinitomo.averaging.poses.combine_poses`; the regrouping takes the clustering's
    options from the classify step (``cluster/classified.json``).
    """
    from affinitomo.averaging.averages import write_averages
    from affinitomo.io.stacks import open_stacks
    from affinitomo.averaging.poses import combine_poses, read_match_poses
    from affinitomo.geometry import euler_to_matrix, matrix_to_euler
    from affinitomo.grouping import ClusterOptions
    from affinitomo.io.atomic import atomic_path
    from affinitomo.io.classified import read_classified
    from affinitomo.io.latents import align_to_table, read_latents
    from affinitomo.io.particles import ANGLES, read_particles, write_particles
    from affinitomo.io.results import build_table, write_class_stars, write_classes_csv, write_json
    from affinitomo.labels import UNKNOWN
    from affinitomo.labels import class_numbers, unknown_group_name
    from affinitomo.labels import labelled_mask

    options = options or AlignOptions()
    out_dir = Path(out_dir)
    check_average_inputs(particles_path, stack_path, match_poses)
    table = read_particles(particles_path)
    cl = read_classified(out_dir, table, particles_path)
    cluster_options = ClusterOptions.from_dict(cl.options["cluster"], Path(out_dir) / "cluster")
    latents = align_to_table(read_latents(latents_path), table, latents_path, particles_path)
    matched = read_match_poses(match_poses, table, particles_path) if match_poses else None
    stack = open_stacks(stack_path, len(table)) if stack_path is not None else None
    labelled = labelled_mask(table)
    labels = table["afmClassName"].fillna("").astype(str).str.strip().to_numpy()
    assigned, clusters, points = cl.assigned, cl.clusters.copy(), cl.points
    cluster_info = dict(cl.clustering)
    unknown = assigned == UNKNOWN

    px = pd.to_numeric(table["afmPixelSize"], errors="coerce").to_numpy(float) if "afmPixelSize" in table else None
    voxel = float(np.nanmedian(px)) if px is not None and np.isfinite(px).any() else None
    use_stack = stack is not None and (options.align_unknown or options.align_regroup)
    if use_stack and voxel is None:
        log.warning("no afmPixelSize in %s: the unknown groups are neither regrouped nor aligned (model's poses)",
                    particles_path)
    use_stack = use_stack and voxel is not None
    if use_stack:
        from affinitomo.density.score import default_device

        device = str(default_device())
    if use_stack and options.align_regroup and cluster_options.unknown == "separate":
        from affinitomo.averaging.regroup import regroup_unknown
        from affinitomo.grouping import cluster_counts, with_unknown_groups

        regrouped, cluster_info["regroup"] = regroup_unknown(stack, points, unknown, voxel, cluster_options,
                                                             options, device)
        if regrouped is not None:
            clusters = with_unknown_groups(clusters, unknown, regrouped)
            cluster_info.update(cluster_counts(clusters))

    aligned: dict[int, AlignedGroup] = {}
    if use_stack and options.align_unknown:
        from affinitomo.averaging.align import align_unknown_groups

        aligned, groups = align_unknown_groups(stack, np.where(unknown, clusters, -1), voxel, options, device)
        clusters = np.where(unknown, groups, clusters)
    competed = None
    if aligned and matched is not None and options.align_compete:
        from affinitomo.averaging.compete import class_references, compete

        references = class_references(stack, labels, labelled, matched.template, matched.rotation, voxel, options)
        competed = compete(stack, assigned, groups, labelled, references, aligned, matched.template, voxel,
                           options, UNKNOWN, device)
        clusters = moved_clusters(clusters, assigned, competed.assigned, competed.groups)
        assigned = competed.assigned.astype(str)
        unknown = assigned == UNKNOWN
        cluster_info["compete"] = competed.counts
    numbers, classes = class_numbers(cl.known, assigned, clusters, cl.trained)
    rotation, pose_source = combine_poses(assigned, cl.trained, latents.rotation, matched,
                                          table[ANGLES].to_numpy(float))
    if aligned:
        if rotation is None:
            rotation = euler_to_matrix(*table[ANGLES].to_numpy(float).T)
        for group in aligned.values():
            stays = unknown[group.rows]  # not moved into a known class
            rotation[group.rows[stays]] = group.rotation[stays]
            pose_source[group.rows[stays]] = "group"
        if competed is not None:
            rotation[competed.into_groups] = competed.rotation
            pose_source[competed.into_groups] = "group"
        if competed is not None and options.align_refresh:
            from affinitomo.averaging.align import refresh_groups

            refreshed = refresh_groups(stack, aligned, competed.groups, voxel, options, device)
            for g, group in refreshed.items():
                if group is not aligned[g]:  # rebuilt: its rows are all in the group now
                    rotation[group.rows] = group.rotation
            aligned = refreshed
    angles = None
    if rotation is not None:  # rows whose pose is the input's keep its angles as given
        angles = table[ANGLES].to_numpy(float).copy()
        posed = pose_source != "input"
        angles[posed] = matrix_to_euler(rotation[posed])
    results = build_table(table, assigned=assigned, numbers=numbers, clusters=clusters, confidence=cl.confidence,
                          distance=cl.distance, umap_xy=cl.xy, labelled=labelled, angles=angles)
    results["afmPoseSource"] = pose_source.astype(str)
    alignment = {unknown_group_name(g): {"n": int(a.rows.size), "mean_score": a.score, "moved_in": a.moved_in}
                 for g, a in aligned.items()}

    # Everything is computed; now write (each file atomically).
    written = [write_particles(out_dir / "particles.star", results)]
    written += write_class_stars(out_dir, results, classes)
    written.append(write_classes_csv(out_dir / "classes.csv", classes))
    if stack is not None:
        written += write_averages(out_dir, stack_path, numbers, dict(zip(classes["number"], classes["name"])),
                                  rotation, voxel)
    folder = out_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"assigned": np.asarray(assigned).astype(str), "numbers": np.asarray(numbers, dtype=np.int64),
              "clusters": np.asarray(clusters, dtype=np.int64), "pose_source": np.asarray(pose_source).astype(str)}
    if rotation is not None:
        arrays["rotation"] = np.asarray(rotation, dtype=np.float64)
    with atomic_path(folder / ARRAYS) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    written.append(folder / ARRAYS)
    written.append(write_json(folder / INFO, {"clustering": cluster_info, "alignment": alignment,
                                              "options": asdict(options)}))
    return written
