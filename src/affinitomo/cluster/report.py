"""The report step (``affinitomo report``): metrics, plots and ``run.json`` of a results folder.

Reads the classify step's and the average step's outputs (``cluster/``, ``average/``,
``particles.star``) and writes what neither decides: ``metrics.json`` (with a truth table),
``umap*.png``, ``confusion.png``, ``loss.png``, ``latent_similarity.png`` (with the similarity
matrix), ``reconstructions.png`` and ``traversals.png`` (with the checkpoint and the stack) and
``run.json`` (the files the viewer opens).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affinitomo.errors import InputError

log = logging.getLogger(__name__)


def _check_file(path: Any, what: str) -> None:
    if path is not None and not Path(path).is_file():
        raise InputError(path, None, f"the {what} file (not found)")


def check_report_inputs(particles_path: str | Path, *, truth_path: str | Path | None = None,
                        training_log: str | Path | None = None,
                        stack_path: str | Path | list[str | Path] | None = None,
                        checkpoint: str | Path | None = None, latents_path: str | Path | None = None,
                        tomograms: list[str | Path] | None = None, particle_diameter: float | None = None) -> None:
    """Read and check the report step's own inputs (truth against the table, checkpoint against the
    latents and the stack, tomograms, particle diameter)."""
    from affinitomo.cluster.decoded import load_checked_model
    from affinitomo.cluster.inputs import truth_for
    from affinitomo.cluster.run_info import resolve_tomograms
    from affinitomo.io.latents import read_latents
    from affinitomo.io.particles import read_particles
    from affinitomo.io.stacks import open_stacks

    _check_file(training_log, "training log")
    _check_file(checkpoint, "checkpoint")
    if particle_diameter is not None and not particle_diameter > 0:
        raise InputError("--particle-diameter", None, f"a positive number (Å), got {particle_diameter}")
    resolve_tomograms(tomograms or [])
    table = read_particles(particles_path)
    if truth_path is not None:
        truth_for(table, truth_path, particles_path)
    if checkpoint is not None and latents_path is not None:
        latents = read_latents(latents_path)
        stack = open_stacks(stack_path, len(table)) if stack_path is not None else None
        load_checked_model(checkpoint, latents.mu.shape[1], latents.pose.shape[1],
                           None if stack is None else stack.shape[1])


def write_report(latents_path: str | Path, embedding_path: str | Path, particles_path: str | Path,
                 out_dir: str | Path, *, truth_path: str | Path | None = None,
                 matrix_path: str | Path | None = None, training_log: str | Path | None = None,
                 stack_path: str | Path | list[str | Path] | None = None, checkpoint: str | Path | None = None,
                 tomograms: list[str | Path] | None = None,
                 particle_diameter: float | None = None) -> dict[str, Any]:
    """The report step on the results folder ``out_dir``. Returns a summary (``n_particles``,
    ``n_unknown`` (as classified, before the competition), ``classes``, ``metrics`` (None without
    truth), ``files``)."""
    from affinitomo.cluster.classifier_file import NAME as CLASSIFIER_NAME
    from affinitomo.cluster.inputs import latent_prior, read_matrix, truth_for
    from affinitomo.cluster.results import write_plots
    from affinitomo.cluster.run_info import RUN_INFO_NAME, resolve_tomograms, run_info
    from affinitomo.evaluate import evaluate, pose_error
    from affinitomo.geometry import euler_to_matrix
    from affinitomo.io.averaged import SOURCES
    from affinitomo.io.averaged import read_averaged
    from affinitomo.io.classified import read_classified
    from affinitomo.io.latents import align_to_table, read_latents
    from affinitomo.io.particles import read_particles
    from affinitomo.io.results import write_json
    from affinitomo.io.stacks import open_stacks
    from affinitomo.labels import class_numbers
    from affinitomo.labels import labelled_mask
    from affinitomo.umap_file import NAME as UMAP_NAME

    out_dir = Path(out_dir)
    check_report_inputs(particles_path, truth_path=truth_path, training_log=training_log, stack_path=stack_path,
                        checkpoint=checkpoint, tomograms=tomograms, particle_diameter=particle_diameter)
    tomogram_paths = resolve_tomograms(tomograms or [])
    table = read_particles(particles_path)
    n = len(table)
    cl = read_classified(out_dir, table, particles_path)
    av = read_averaged(out_dir, n)
    results_path = out_dir / "particles.star"
    if not results_path.is_file():
        raise InputError(results_path, None, "the results table of 'affinitomo average'")
    results = read_particles(results_path)
    latents = align_to_table(read_latents(latents_path), table, latents_path, particles_path)
    matrix = read_matrix(matrix_path)
    stack = open_stacks(stack_path, n) if stack_path is not None else None
    model, ckpt = None, None
    if checkpoint is not None:  # checked whenever given; decoder plots need the stack too
        from affinitomo.cluster.decoded import load_checked_model

        model, ckpt = load_checked_model(checkpoint, latents.mu.shape[1], latents.pose.shape[1],
                                         None if stack is None else stack.shape[1])
        if stack is None:
            model = None
    labelled = labelled_mask(table)
    numbers, classes = class_numbers(cl.known, av.assigned, av.clusters, cl.trained)
    seed = int(cl.options["cluster"].get("seed", 0))

    metrics = None
    truth_names = None
    if truth_path is not None:
        truth = truth_for(table, truth_path, particles_path)
        truth_names = truth["afmClassName"].to_numpy().astype(str)
        ev = (~labelled) & (truth_names != "")
        if not ev.any():
            raise InputError(truth_path, "afmClassName", "true classes for at least one unlabelled particle")
        metrics = evaluate(truth_names[ev], av.assigned[ev], numbers[ev], av.clusters[ev], cl.trained,
                           points=cl.points[ev], seed=seed)
        metrics["n_labelled"] = int(labelled.sum())
        metrics["open_set"] = cl.calibration
        metrics["clustering"] = av.clustering
        metrics["alignment"] = av.alignment
        metrics["options"] = {"cluster": cl.options["cluster"],
                              "classify": cl.options["classify"],
                              "align": av.options}
        rotation = av.rotation
        if rotation is not None and all(c in truth.columns for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")):
            true_rot = euler_to_matrix(*(truth[c].to_numpy(float) for c in ("rlnAngleRot", "rlnAngleTilt",
                                                                              "rlnAnglePsi")))
            ok = ev & np.all(np.isfinite(true_rot.reshape(n, -1)), axis=1)
            metrics["pose_error"] = pose_error(rotation[ok], true_rot[ok], truth_names[ok])
            metrics["pose_error"]["sources"] = {s: int(np.sum(av.pose_source[ok] == s)) for s in SOURCES}
        log.info("f1_macro=%s ari=%.3f nmi=%.3f on %d held-out particles", metrics["f1_macro"], metrics["ari"],
                 metrics["nmi"], int(ev.sum()))
    prior = None
    if matrix is not None:
        if truth_names is not None:
            prior = latent_prior(latents.mu, truth_names, matrix, "true classes, all particles")
        else:
            prior = latent_prior(latents.mu, av.assigned.astype(str), matrix, "assigned known classes")
        if metrics is not None:
            metrics["prior_spearman"] = prior["rho"]
            metrics["prior_spearman_basis"] = prior["basis"]
        log.info("prior vs latent class similarity: Spearman rho %s (%s)", prior["rho"], prior["basis"])
    decoded = _decoded_views(model, ckpt, stack, latents, numbers, classes, seed) if model is not None else None

    # Everything is computed; now write (each file atomically).
    written: list[Path] = []
    if metrics is not None:
        written.append(write_json(out_dir / "metrics.json", metrics))
    written += write_plots(out_dir, results, metrics, Path(training_log) if training_log else None,
                           truth_names=np.where(truth_names == "", "(no truth)", truth_names)
                           if truth_names is not None else None)
    if prior is not None:
        from affinitomo.plots.latent_similarity import plot_latent_similarity

        written.append(plot_latent_similarity(out_dir / "latent_similarity.png", prior["names"], prior["matrix"],
                                              prior["cosine"], prior["rho"], prior["basis"]))
    if decoded is not None:
        written += _write_decoded(out_dir, decoded)
    classifier_out = out_dir / CLASSIFIER_NAME if cl.classifier else None
    info = run_info(table, out_dir=out_dir, tomograms=tomogram_paths, particles=particles_path,
                    latents=latents_path, embedding=embedding_path, stack=stack_path, checkpoint=checkpoint,
                    classifier=classifier_out, umap=Path(embedding_path).parent / UMAP_NAME, matrix=matrix_path,
                    particle_diameter=particle_diameter)
    written.append(write_json(out_dir / RUN_INFO_NAME, info))
    return {"n_particles": n, "n_unknown": cl.n_unknown, "classes": classes, "metrics": metrics,
            "files": written}


def _decoded_views(model: Any, ckpt: dict, stack: Any, latents: Any, numbers: np.ndarray,
                   classes: pd.DataFrame, seed: int) -> dict[str, Any] | None:
    """Reconstructions of a few particles per group and traversals around the largest group."""
    from affinitomo.cluster.decoded import pick_examples, reconstruct_rows, traversals
    from affinitomo.labels import group_names

    examples = pick_examples(numbers, seed=seed)
    if not examples:
        log.info("no numbered groups: no reconstructions or traversals")
        return None
    names = group_names(np.array(list(examples)), classes)
    normalise = ckpt["train_config"].normalise
    groups = []
    for name, rows in zip(names, examples.values()):
        inputs, recons = reconstruct_rows(model, stack, rows, normalise)
        groups.append((str(name), inputs, recons))
    counts = {g: int(np.sum(numbers == g)) for g in examples}
    largest = max(counts, key=counts.get)
    trav = traversals(model, latents.mu, latents.pose, np.flatnonzero(numbers == largest))
    trav["anchor"] = str(group_names(np.array([largest]), classes)[0])
    return {"groups": groups, "traversals": trav}


def _write_decoded(out_dir: Path, decoded: dict[str, Any]) -> list[Path]:
    from affinitomo.plots.reconstructions import plot_reconstructions
    from affinitomo.plots.traversals import plot_traversals

    trav = decoded["traversals"]
    return [plot_reconstructions(out_dir / "reconstructions.png", decoded["groups"]),
            plot_traversals(out_dir / "traversals.png", trav["volumes"], trav["rows"], trav["offsets"],
                            title=f"Latent traversals around the mean latent of '{trav['anchor']}' "
                                  f"(central z slice)")]
