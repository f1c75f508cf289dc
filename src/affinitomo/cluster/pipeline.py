"""The ``cluster`` stage: latents + embedding + table (+ truth, matrix, model) -> results folder.

Three steps, each with its own entry point, CLI verb and Snakemake rule, so that changing an
option reruns only the steps after it:

1. classify (:func:`classify_particles`, ``affinitomo cluster``): open-set classification and
   grouping -> ``cluster/classified.npz``, ``cluster/classified.json``, ``classifier.npz``;
2. average (:func:`affinitomo.averaging.stage.average_groups`, ``affinitomo average``): 3-D
   alignment of the groups, final poses -> ``particles.star``, ``classes.csv``, ``averages/``;
3. report (:func:`affinitomo.cluster.report.write_report`, ``affinitomo report``): metrics,
   plots, ``run.json``.

:func:`run_cluster` runs the three in one process. With ``classifier_path`` (a ``classifier.npz`` of an earlier run) the known classes are
predicted by that classifier, not refitted: new tomograms are classified exactly as the first
run would have classified them. Clusters are always recomputed on the data given (neither
Louvain nor HDBSCAN places new points in an old clustering), so the ids of ``unknown`` groups
are those of this run.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affinitomo.averaging.align import AlignOptions
from affinitomo.cluster.classifier_file import NAME as CLASSIFIER_NAME
from affinitomo.cluster.classify import ClassifyOptions, OpenSetClassifier
from affinitomo.cluster.features import FeatureSpace
from affinitomo.cluster.inputs import read_matrix
from affinitomo.errors import InputError
from affinitomo.grouping import ClusterOptions, group_particles
from affinitomo.io.embedding import read_embedding
from affinitomo.io.latents import align_to_table, read_latents
from affinitomo.labels import UNKNOWN
from affinitomo.labels import labelled_mask

log = logging.getLogger(__name__)


@dataclass
class StageOptions:
    """All ``cluster`` options, given as one flat JSON object (``seed`` goes to every part)."""

    cluster: ClusterOptions
    classify: ClassifyOptions
    align: AlignOptions = field(default_factory=AlignOptions)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: Any = None) -> "StageOptions":
        parts = (ClusterOptions, ClassifyOptions, AlignOptions)
        keys = [{f.name for f in fields(part)} for part in parts]
        unknown = sorted(set(values) - set().union(*keys))
        if unknown:
            raise InputError(source, unknown[0], f"a cluster option, one of {sorted(set().union(*keys))}")
        return cls(*(part.from_dict({k: v for k, v in values.items() if k in names}, source)
                     for part, names in zip(parts, keys)))


def known_class_order(labels: np.ndarray, matrix_names: list[str] | None, particles_path: Any,
                      matrix_path: Any = None) -> list[str]:
    """Known classes in matrix order (labels must be matrix classes), else sorted label names."""
    present = sorted(set(np.asarray(labels).astype(str).tolist()))
    if matrix_names is None:
        return present
    missing = [c for c in present if c not in matrix_names]
    if missing:
        raise InputError(particles_path, "afmClassName",
                         f"labels among the classes of {matrix_path} ({matrix_names}); not there: {missing}")
    return list(matrix_names)


def embedding_for(table: pd.DataFrame, embedding_path: str | Path, particles_path: Any) -> np.ndarray:
    """(N, 2) UMAP coordinates in table order."""
    emb = read_embedding(embedding_path)
    from affinitomo.io.tables import rows_for_table

    pos = rows_for_table(emb["afmParticleId"], table, embedding_path, "an embedding", particles_path)
    return emb[["UMAP0", "UMAP1"]].to_numpy(float)[pos]


@dataclass
class Classified:
    """Known classes with the open set, per particle, and what produced them."""

    assigned: np.ndarray
    confidence: np.ndarray
    distance: np.ndarray
    calibration: dict[str, Any]
    known: list[str]  # class order (numbers 1..K)
    trained: list[str]  # classes the classifier can assign
    classifier: OpenSetClassifier | None
    features: np.ndarray  # what was classified and is clustered (latents [+ template scores])
    space: FeatureSpace


def classify(mu: np.ndarray, labels: np.ndarray, labelled: np.ndarray, known: list[str],
             options: ClassifyOptions, stored: dict[str, Any] | None, particles_path: Any,
             scores: tuple[list[str], np.ndarray] | None = None, scores_path: Any = None) -> Classified:
    """Fit the open-set classifier on the labelled rows (or use ``stored``) and predict every row.

    Features: the latent means ``mu``, with the template-matching ``scores`` (names, (N, K)) when
    given (:class:`~affinitomo.cluster.features.FeatureSpace`; a stored classifier brings its own).
    """
    n = len(mu)
    names, values = scores if scores is not None else (None, None)
    if not (stored["classifier"].options if stored is not None else options).latents:
        if values is None:
            raise InputError(scores_path, "latents", "template or class-reference scores (--match-scores) for "
                                                     "latents: false (the scores are then the only features)")
        mu = np.empty((n, 0))
    _check_finite(mu if values is None else np.hstack([mu, values]), scores_path)
    space = stored["features"] if stored is not None else FeatureSpace.fit(mu, names, values)
    source = stored["path"] if stored is not None and scores is None else scores_path
    mu = _check_finite(space.transform(mu, names, values, source=source), source)
    if stored is not None:
        clf = stored["classifier"]
        known, trained = list(stored["classes"]), list(stored["trained"])
        bad = sorted(set(labels[labelled].tolist()) - set(trained))
        if bad:
            raise InputError(particles_path, "afmClassName",
                             f"labels among the classifier's classes {trained}; not there: {bad}")
    elif labelled.any():
        clf = OpenSetClassifier(options).fit(mu[labelled], labels[labelled], unlabelled=mu[~labelled])
        trained = [c for c in known if c in set(labels[labelled].tolist())]
    else:
        log.warning("no labelled particles in %s: every particle is 'unknown' and keeps its cluster",
                    particles_path)
        return Classified(np.full(n, UNKNOWN, dtype=object), np.zeros(n), np.full(n, np.inf),
                          {"rule": "no labelled particles: no classifier", "threshold": None}, known, [], None,
                          mu, space)
    pool_rows = np.full(n, -1, dtype=np.int64)  # each row's place in the fitting pool (labelled first)
    if stored is None:
        pool_rows[labelled] = np.arange(int(labelled.sum()))
        pool_rows[~labelled] = int(labelled.sum()) + np.arange(int((~labelled).sum()))
    pred = clf.predict(mu, pool_rows)
    assigned = np.asarray(pred.label, dtype=object)
    from_scores = clf.options.known_from == "scores" or (clf.options.known_from == "auto" and values is not None
                                                         and scores_for_every_class(names, trained, scores_path))
    if from_scores:
        assigned = best_scoring_class(assigned, trained, names, values, scores_path)
    assigned[labelled] = labels[labelled]  # the user's labels stand for the particles they labelled
    confidence = np.where(labelled, 1.0, pred.confidence)
    calibration = dict(clf.calibration_)
    if stored is not None:
        calibration["applied_from"] = str(stored["path"])
    calibration["features"] = space.describe()
    calibration["known_class_from"] = "scores" if from_scores else "classifier"
    return Classified(assigned, confidence, pred.distance, calibration, known, trained, clf, mu, space)


def scores_for_every_class(names: list[str] | None, trained: list[str], source: Any) -> bool:
    """Whether every trained class has a score column (``known_from: auto`` takes the scores only then;
    otherwise a class without a template could never be given, and the classifier decides)."""
    missing = sorted(set(trained) - set(names or []))
    if missing:
        log.warning("%s: no template scores for the classes %s: the classifier gives the known classes "
                    "(known_from: auto)", source, missing)
    return not missing


def best_scoring_class(assigned: np.ndarray, trained: list[str], names: list[str] | None,
                       values: np.ndarray | None, source: Any) -> np.ndarray:
    """``assigned`` with every row kept among the known classes given the trained class whose score
    is highest (``known_from: scores``, and ``auto`` with scores: multi-reference classification against
    the templates or the class references; the open set still decides what is unknown). On the ablation
    set it beat the kNN classifier's class on every tier and split measured (docs/benchmarks.md, "Ablation")."""
    if values is None:
        raise InputError(source, "known_from", "template or class-reference scores (--match-scores) for "
                                               "known_from: scores")
    columns = [i for i, name in enumerate(names or []) if name in set(trained)]
    if not columns:
        raise InputError(source, "columns", f"scores named by the trained classes {trained}; got {names}")
    out = np.asarray(assigned, dtype=object).copy()
    kept = out != UNKNOWN
    best = np.asarray(values, float)[:, columns].argmax(axis=1)
    out[kept] = np.asarray(names, dtype=object)[columns][best[kept]]
    return out


def _check_finite(features: np.ndarray, source: Any) -> np.ndarray:
    """``features``, when every row is finite: a particle without finite features is never given a
    class (InputError naming ``source`` and the rows otherwise)."""
    broken = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if broken.size:
        raise InputError(source, "features", f"finite latents and template scores for every particle; "
                                             f"{broken.size} rows are not (rows {broken[:5].tolist()})")
    return features


def _check_file(path: Any, what: str) -> None:
    if path is not None and not Path(path).is_file():
        raise InputError(path, None, f"the {what} file (not found)")


def classify_particles(latents_path: str | Path, embedding_path: str | Path, particles_path: str | Path,
                       out_dir: str | Path, *, matrix_path: str | Path | None = None,
                       options: StageOptions | None = None, classifier_path: str | Path | None = None,
                       match_scores: str | Path | list[str | Path] | None = None,
                       trust_pickle: bool = False) -> list[Path]:
    """The classify step: open-set classification and grouping, written to ``out_dir/cluster/``
    (:mod:`affinitomo.io.classified`) and, when a classifier was fitted or given,
    ``out_dir/classifier.npz``. Returns the files written.

    ``match_scores``: ``scores.csv`` of the match stage (one, or one per tomogram): the template
    scores join the latents as features of the classifier and the clustering. ``trust_pickle``:
    ``classifier_path`` may be a classifier.pkl of the older pickle format (it is read, and
    written as classifier.npz). Every input is read and checked before any output.
    """
    from affinitomo.cluster.classifier_file import load_classifier, save_classifier
    from affinitomo.io.classified import ClassifiedRun, write_classified
    from affinitomo.io.particles import read_particles

    options = options or StageOptions(ClusterOptions(), ClassifyOptions())
    out_dir = Path(out_dir)
    _check_file(classifier_path, "classifier")
    table = read_particles(particles_path)
    latents = align_to_table(read_latents(latents_path), table, latents_path, particles_path)
    xy = embedding_for(table, embedding_path, particles_path)
    if options.cluster.space == "umap" and not np.isfinite(xy).all():
        raise InputError(embedding_path, "UMAP0/UMAP1", f"finite map coordinates for clustering in the UMAP "
                                                        f"(space: umap); {int((~np.isfinite(xy).all(1)).sum())} "
                                                        f"particles have none")
    scores = None
    if match_scores:
        from affinitomo.io.scores import read_scores

        scores = read_scores(match_scores, table, particles_path)
    matrix = read_matrix(matrix_path)
    stored = None
    if classifier_path is not None:
        stored = load_classifier(classifier_path, latent_dims=latents.mu.shape[1],
                                 matrix_names=None if matrix is None else matrix[0], matrix_path=matrix_path,
                                 trust_pickle=trust_pickle)
        stored["path"] = Path(classifier_path).resolve()
    labelled = labelled_mask(table)
    labels = table["afmClassName"].fillna("").astype(str).str.strip().to_numpy()
    known = None if stored else known_class_order(labels[labelled], None if matrix is None else matrix[0],
                                                  particles_path, matrix_path)

    # Unsupervised grouping (always on this run's particles), in the classifier's feature space.
    cl = classify(latents.mu, labels, labelled, known, options.classify, stored, particles_path,
                  scores, match_scores)
    points = cl.features if options.cluster.space == "latent" else xy
    unknown = cl.assigned == UNKNOWN
    clusters, cluster_info = group_particles(points, unknown, options.cluster, len(cl.known))
    log.info("%d of %d particles unknown (threshold %s)", int(np.sum(unknown)), len(table),
             cl.calibration.get("threshold"))
    run = ClassifiedRun(cl.assigned, clusters, cl.confidence, cl.distance, points, xy, cl.known, cl.trained,
                        cl.calibration, cluster_info,
                        {"cluster": asdict(options.cluster),
                         "classify": asdict(cl.classifier.options if cl.classifier is not None else options.classify)},
                        cl.classifier is not None)
    written = write_classified(out_dir, table["afmParticleId"].to_numpy(np.int64), run)
    if cl.classifier is not None:
        written.append(save_classifier(out_dir / CLASSIFIER_NAME, cl.classifier, cl.known, cl.trained,
                                       latents.mu.shape[1], cl.space))
    return written


def run_cluster(latents_path: str | Path, embedding_path: str | Path, particles_path: str | Path,
                out_dir: str | Path, *, truth_path: str | Path | None = None,
                matrix_path: str | Path | None = None, training_log: str | Path | None = None,
                stack_path: str | Path | list[str | Path] | None = None, options: StageOptions | None = None,
                classifier_path: str | Path | None = None, checkpoint: str | Path | None = None,
                tomograms: list[str | Path] | None = None,
                particle_diameter: float | None = None,
                match_scores: str | Path | list[str | Path] | None = None,
                match_poses: str | Path | list[str | Path] | None = None,
                trust_pickle: bool = False) -> dict[str, Any]:
    """The three steps of the stage in one process: :func:`classify_particles` (``affinitomo cluster``),
    :func:`affinitomo.averaging.stage.average_groups` (``affinitomo average``) and
    :func:`affinitomo.cluster.report.write_report` (``affinitomo report``), with the files of each.

    Returns a summary (``n_particles``, ``n_unknown``, ``classes``, ``metrics`` (None without truth),
    ``files``). ``match_poses``: the match stage's ``particles.star`` (one, or one per tomogram):
    poses of known-class particles (:mod:`affinitomo.averaging.poses`); the other arguments as the
    steps'. Every input of every step is read and checked before any output.
    """
    from affinitomo.averaging.stage import average_groups, check_average_inputs
    from affinitomo.cluster.report import check_report_inputs, write_report

    options = options or StageOptions(ClusterOptions(), ClassifyOptions())
    check_average_inputs(particles_path, stack_path, match_poses)
    check_report_inputs(particles_path, truth_path=truth_path, training_log=training_log, stack_path=stack_path,
                        checkpoint=checkpoint, latents_path=latents_path, tomograms=tomograms,
                        particle_diameter=particle_diameter)
    written = classify_particles(latents_path, embedding_path, particles_path, out_dir, matrix_path=matrix_path,
                                 options=options, classifier_path=classifier_path, match_scores=match_scores,
                                 trust_pickle=trust_pickle)
    written += average_groups(latents_path, particles_path, out_dir, stack_path=stack_path, match_poses=match_poses,
                              options=options.align)
    summary = write_report(latents_path, embedding_path, particles_path, out_dir, truth_path=truth_path,
                           matrix_path=matrix_path, training_log=training_log, stack_path=stack_path,
                           checkpoint=checkpoint, tomograms=tomograms, particle_diameter=particle_diameter)
    summary["files"] = written + summary["files"]
    log.info("wrote %d files to %s", len(summary["files"]), out_dir)
    return summary
