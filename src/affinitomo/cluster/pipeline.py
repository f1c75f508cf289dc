"""The ``cluster`` stage: latents + embedding + table (+ truth, matrix) -> results folder."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affinitomo.cluster.classify import UNKNOWN, ClassifyOptions, OpenSetClassifier
from affinitomo.cluster.clustering import ClusterOptions, cluster_points
from affinitomo.cluster.results import (build_table, class_numbers, write_class_stars, write_classes_csv,
                                        write_json, write_plots)
from affinitomo.embed import align_to_table, labelled_mask, read_embedding, read_latents
from affinitomo.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class StageOptions:
    """All ``cluster`` options, given as one flat JSON object (``seed`` goes to both parts)."""

    cluster: ClusterOptions
    classify: ClassifyOptions

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: Any = None) -> "StageOptions":
        cluster_keys = {f.name for f in fields(ClusterOptions)}
        classify_keys = {f.name for f in fields(ClassifyOptions)}
        unknown = sorted(set(values) - cluster_keys - classify_keys)
        if unknown:
            raise InputError(source, unknown[0], f"a cluster option, one of {sorted(cluster_keys | classify_keys)}")
        return cls(
            ClusterOptions.from_dict({k: v for k, v in values.items() if k in cluster_keys}, source),
            ClassifyOptions.from_dict({k: v for k, v in values.items() if k in classify_keys}, source),
        )


def known_class_order(labels: np.ndarray, matrix_path: str | Path | None, particles_path: Any) -> list[str]:
    """Known classes in matrix order (labels must be matrix classes), else sorted label names."""
    present = sorted(set(np.asarray(labels).astype(str).tolist()))
    if matrix_path is None:
        return present
    try:
        from affinitomo.similarity import read_similarity
    except ImportError:
        from affinitomo.similarity.matrix_io import read_similarity
    names, _ = read_similarity(matrix_path)
    missing = [c for c in present if c not in names]
    if missing:
        raise InputError(particles_path, "afmClassName",
                         f"labels among the classes of {matrix_path} ({names}); not there: {missing}")
    return list(names)


def embedding_for(table: pd.DataFrame, embedding_path: str | Path, particles_path: Any) -> np.ndarray:
    """(N, 2) UMAP coordinates in table order."""
    emb = read_embedding(embedding_path)
    pos = pd.Index(emb["afmParticleId"].to_numpy(np.int64)).get_indexer(table["afmParticleId"].to_numpy(np.int64))
    if (pos < 0).any():
        missing = table["afmParticleId"].to_numpy()[pos < 0]
        raise InputError(embedding_path, "afmParticleId",
                         f"an embedding for every particle of {particles_path}; {missing.size} missing "
                         f"(e.g. {missing[:5].tolist()})")
    return emb[["UMAP0", "UMAP1"]].to_numpy(float)[pos]


def truth_for(table: pd.DataFrame, truth_path: str | Path) -> pd.DataFrame:
    """Truth rows matched to the table by afmParticleId (NaN / '' where absent)."""
    from affinitomo.io.particles import read_particles

    truth = read_particles(truth_path)
    cols = ["afmParticleId", "afmClassName"] + [c for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
                                                if c in truth.columns]
    pos = pd.Index(truth["afmParticleId"].to_numpy(np.int64)).get_indexer(table["afmParticleId"].to_numpy(np.int64))
    matched = pd.DataFrame({c: truth[c].to_numpy()[np.maximum(pos, 0)] for c in cols})
    matched.loc[pos < 0, cols[1:]] = np.nan
    matched["afmParticleId"] = table["afmParticleId"].to_numpy()
    matched["afmClassName"] = matched["afmClassName"].fillna("").astype(str)
    n_missing = int((matched["afmClassName"] == "").sum())
    if n_missing == len(table):
        raise InputError(truth_path, "afmParticleId", "true classes for the particles (no afmParticleId matched)")
    if n_missing:
        log.warning("%d particles have no true class in %s and are not evaluated", n_missing, truth_path)
    return matched


def run_cluster(latents_path: str | Path, embedding_path: str | Path, particles_path: str | Path,
                out_dir: str | Path, *, truth_path: str | Path | None = None,
                matrix_path: str | Path | None = None, training_log: str | Path | None = None,
                stack_path: str | Path | None = None, options: StageOptions | None = None) -> dict[str, Any]:
    """Cluster, classify with an open set, evaluate, and write the results folder. Returns a summary."""
    from affinitomo.evaluate import evaluate, pose_error
    from affinitomo.geometry import euler_to_matrix, matrix_to_euler
    from affinitomo.io.particles import read_particles, write_particles

    options = options or StageOptions(ClusterOptions(), ClassifyOptions())
    out_dir = Path(out_dir)
    for given, name in ((training_log, "training log"), (stack_path, "subtomogram stack")):
        if given is not None and not Path(given).is_file():
            raise InputError(given, None, f"the {name} file (not found)")
    table = read_particles(particles_path)
    latents = align_to_table(read_latents(latents_path), table, latents_path, particles_path)
    xy = embedding_for(table, embedding_path, particles_path)
    labelled = labelled_mask(table)
    labels = table["afmClassName"].fillna("").astype(str).str.strip().to_numpy()
    known = known_class_order(labels[labelled], matrix_path, particles_path)

    # Unsupervised grouping.
    points = latents.mu if options.cluster.space == "latent" else xy
    clusters, cluster_info = cluster_points(points, options.cluster, n_known=len(known))

    # Known classes with an open set.
    n = len(table)
    if labelled.any():
        clf = OpenSetClassifier(options.classify).fit(latents.mu[labelled], labels[labelled])
        pred = clf.predict(latents.mu)
        assigned = np.asarray(pred.label, dtype=object)
        confidence, distance = pred.confidence, pred.distance
        calibration = clf.calibration_
    else:
        log.warning("no labelled particles in %s: every particle is 'unknown' and keeps its cluster",
                    particles_path)
        assigned = np.full(n, UNKNOWN, dtype=object)
        confidence, distance = np.zeros(n), np.full(n, np.inf)
        calibration = {"rule": "no labelled particles: no classifier", "threshold": None}
    assigned[labelled] = labels[labelled]  # the user's labels stand for the particles they labelled
    confidence = np.where(labelled, 1.0, confidence)
    n_unknown = int(np.sum(assigned == UNKNOWN))
    log.info("%d of %d particles unknown (threshold %s)", n_unknown, n, calibration.get("threshold"))

    trained = [c for c in known if c in set(labels[labelled].tolist())]
    numbers, classes = class_numbers(known, assigned, clusters, trained)
    angles = matrix_to_euler(latents.rotation) if latents.rotation is not None else None
    results = build_table(table, assigned=assigned, numbers=numbers, clusters=clusters, confidence=confidence,
                          distance=distance, umap_xy=xy, labelled=labelled, angles=angles)

    metrics = None
    truth_names = None
    if truth_path is not None:
        truth = truth_for(table, truth_path)
        truth_names = truth["afmClassName"].to_numpy().astype(str)
        ev = (~labelled) & (truth_names != "")
        if not ev.any():
            raise InputError(truth_path, "afmClassName", "true classes for at least one unlabelled particle")
        metrics = evaluate(truth_names[ev], assigned[ev], numbers[ev], clusters[ev], trained,
                           points=points[ev], seed=options.cluster.seed)
        metrics["n_labelled"] = int(labelled.sum())
        metrics["open_set"] = calibration
        metrics["clustering"] = cluster_info
        metrics["options"] = {"cluster": asdict(options.cluster), "classify": asdict(options.classify)}
        if latents.rotation is not None and all(c in truth.columns for c in ("rlnAngleRot", "rlnAngleTilt",
                                                                                "rlnAnglePsi")):
            true_rot = euler_to_matrix(*(truth[c].to_numpy(float) for c in ("rlnAngleRot", "rlnAngleTilt",
                                                                              "rlnAnglePsi")))
            ok = ev & np.all(np.isfinite(true_rot.reshape(n, -1)), axis=1)
            metrics["pose_error"] = pose_error(latents.rotation[ok], true_rot[ok], truth_names[ok])
        log.info("f1_macro=%s ari=%.3f nmi=%.3f on %d held-out particles", metrics["f1_macro"], metrics["ari"],
                 metrics["nmi"], int(ev.sum()))

    # Everything is computed; now write (each file atomically).
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_particles(out_dir / "particles.star", results)]
    written += write_class_stars(out_dir, results, classes)
    written.append(write_classes_csv(out_dir / "classes.csv", classes))
    if metrics is not None:
        written.append(write_json(out_dir / "metrics.json", metrics))
    written += write_plots(out_dir, results, metrics, Path(training_log) if training_log else None,
                           truth_names=np.where(truth_names == "", "(no truth)", truth_names)
                           if truth_names is not None else None)
    if stack_path is not None:
        from affinitomo.cluster.averages import write_averages

        px = pd.to_numeric(table["afmPixelSize"], errors="coerce").to_numpy(float)
        voxel = float(np.nanmedian(px)) if np.isfinite(px).any() else None
        written += write_averages(out_dir, stack_path, numbers, dict(zip(classes["number"], classes["name"])),
                                  latents.rotation, voxel)
    log.info("wrote %d files to %s", len(written), out_dir)
    return {"n_particles": n, "n_unknown": n_unknown, "classes": classes, "metrics": metrics,
            "files": written}
