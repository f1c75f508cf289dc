"""The ``cluster`` stage: latents + embedding + table (+ truth, matrix, model) -> results folder.

With ``classifier_path`` (a ``classifier.npz`` of an earlier run) the known classes are
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

from affinitomo.cluster.align import AlignOptions
from affinitomo.cluster.classifier_file import NAME as CLASSIFIER_NAME
from affinitomo.cluster.classify import UNKNOWN, ClassifyOptions, OpenSetClassifier
from affinitomo.cluster.features import FeatureSpace
from affinitomo.cluster.clustering import ClusterOptions, group_particles
from affinitomo.cluster.run_info import RUN_INFO_NAME
from affinitomo.cluster.results import (build_table, class_numbers, unknown_group_name, write_class_stars,
                                        write_classes_csv, write_json, write_plots)
from affinitomo.embed import Latents, align_to_table, labelled_mask, read_embedding, read_latents
from affinitomo.errors import InputError
from affinitomo.umap_file import NAME as UMAP_NAME

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


def read_matrix(matrix_path: str | Path | None) -> tuple[list[str], np.ndarray] | None:
    """(class names, matrix) of the similarity CSV, or None."""
    if matrix_path is None:
        return None
    from affinitomo.similarity.matrix_io import read_similarity

    names, matrix = read_similarity(matrix_path)
    return list(names), np.asarray(matrix, dtype=float)


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


def truth_for(table: pd.DataFrame, truth_path: str | Path, particles_path: Any = "the particle table") -> pd.DataFrame:
    """Truth rows matched to the table by afmParticleId (NaN / '' where absent).

    The ids alone could match a truth table of other data (ids are often 0..N-1), so every
    matched row must also name the same tomogram and lie at the same place: within one voxel,
    in Å where both tables give pixel sizes (the extracted table's coordinates are binned),
    else in pixels. InputError naming the truth file and the first particle that differs.
    """
    from affinitomo.io.particles import read_particles

    truth = read_particles(truth_path)
    cols = ["afmParticleId", "afmClassName"] + [c for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
                                                if c in truth.columns]
    pos = pd.Index(truth["afmParticleId"].to_numpy(np.int64)).get_indexer(table["afmParticleId"].to_numpy(np.int64))
    _check_truth_places(table, truth, pos, truth_path, particles_path)
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


def _check_truth_places(table: pd.DataFrame, truth: pd.DataFrame, pos: np.ndarray, truth_path: Any,
                        particles_path: Any) -> None:
    """InputError unless each truth row matched by id has the table row's tomogram and position."""
    from affinitomo.io.particles import COORDS

    rows = np.flatnonzero(pos >= 0)
    mine, theirs = table.iloc[rows], truth.iloc[pos[rows]]
    ids = mine["afmParticleId"].to_numpy()
    names = mine["rlnTomoName"].astype(str).to_numpy(), theirs["rlnTomoName"].astype(str).to_numpy()
    other = np.flatnonzero(names[0] != names[1])
    if other.size:
        i = other[0]
        raise InputError(truth_path, "rlnTomoName", f"the tomogram of each particle of {particles_path}; "
                                                    f"{other.size} of {rows.size} particles matched by id are in "
                                                    f"another, e.g. afmParticleId {ids[i]} in '{names[1][i]}', "
                                                    f"not '{names[0][i]}' (a truth table of other data?)")
    px = mine["afmPixelSize"].to_numpy(float), theirs["afmPixelSize"].to_numpy(float)
    in_angstrom = np.isfinite(px[0]) & np.isfinite(px[1])
    scale = np.where(in_angstrom, px[0], 1.0), np.where(in_angstrom, px[1], 1.0)
    xyz = mine[COORDS].to_numpy(float) * scale[0][:, None], theirs[COORDS].to_numpy(float) * scale[1][:, None]
    tolerance = np.maximum(scale[0], scale[1])  # one voxel of the coarser grid
    apart = np.linalg.norm(xyz[0] - xyz[1], axis=1)
    off = np.flatnonzero(apart > tolerance)
    if off.size:
        i = off[0]
        unit = "Å" if in_angstrom[i] else "pixels"
        raise InputError(truth_path, "rlnCoordinateX/Y/Z",
                         f"the position of each particle of {particles_path} (within one voxel); {off.size} of "
                         f"{rows.size} particles matched by id lie elsewhere, e.g. afmParticleId {ids[i]} is "
                         f"{apart[i]:.3g} {unit} away (a truth table of other data, or of other coordinates?)")


def moved_clusters(clusters: np.ndarray, before: np.ndarray, after: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Cluster ids after known classes and unknown groups competed: a row moved into a group takes the
    group's id; a row moved into a known class the most common id among that class's other rows."""
    clusters = np.asarray(clusters, dtype=np.int64).copy()
    changed = np.asarray(before).astype(str) != np.asarray(after).astype(str)
    into_group = changed & (after == UNKNOWN)
    clusters[into_group] = groups[into_group]
    for name in np.unique(after[changed & (after != UNKNOWN)]):
        stay = (after == name) & ~changed
        ids, counts = np.unique(clusters[stay], return_counts=True)
        clusters[changed & (after == name)] = ids[counts.argmax()] if ids.size else -1
    return clusters


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
    if clf.options.known_from == "scores":
        assigned = best_scoring_class(assigned, trained, names, values, scores_path)
    assigned[labelled] = labels[labelled]  # the user's labels stand for the particles they labelled
    confidence = np.where(labelled, 1.0, pred.confidence)
    calibration = dict(clf.calibration_)
    if stored is not None:
        calibration["applied_from"] = str(stored["path"])
    calibration["features"] = space.describe()
    return Classified(assigned, confidence, pred.distance, calibration, known, trained, clf, mu, space)


def best_scoring_class(assigned: np.ndarray, trained: list[str], names: list[str] | None,
                       values: np.ndarray | None, source: Any) -> np.ndarray:
    """``assigned`` with every row kept among the known classes given the trained class whose score
    is highest (``known_from: scores``: multi-reference classification, for scores against class
    references built from the data; the open set still decides what is unknown)."""
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


def latent_prior(mu: np.ndarray, names: np.ndarray, matrix: tuple[list[str], np.ndarray],
                 basis: str) -> dict[str, Any]:
    """Spearman rho between the matrix and the cosine similarity of class-mean latents (plus both matrices)."""
    from affinitomo.train.prior_check import class_mean_cosine, prior_spearman

    classes, m = matrix
    index = {c: i for i, c in enumerate(classes)}
    idx = np.array([index.get(str(c), -1) for c in names], dtype=np.int64)
    rho = prior_spearman(mu, idx, m)
    cos = class_mean_cosine(np.asarray(mu, float), idx, len(classes))
    present = [i for i in range(len(classes)) if (idx == i).any()]
    return {"rho": None if not np.isfinite(rho) else float(rho), "basis": basis,
            "names": [classes[i] for i in present], "matrix": m[np.ix_(present, present)],
            "cosine": cos[np.ix_(present, present)]}


def _check_file(path: Any, what: str) -> None:
    if path is not None and not Path(path).is_file():
        raise InputError(path, None, f"the {what} file (not found)")


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
    """Cluster, classify with an open set, evaluate, and write the results folder. Returns a summary.

    ``match_scores``: ``scores.csv`` of the match stage (one, or one per tomogram): the template
    scores join the latents as features of the classifier and the clustering. ``match_poses``: the
    match stage's ``particles.star`` (one, or one per tomogram): poses of known-class particles
    (:mod:`affinitomo.cluster.poses`). ``trust_pickle``: ``classifier_path`` may be a classifier.pkl
    of the older pickle format (it is read, and written as classifier.npz).
    Every input is read and checked (classifier against latents and matrix, checkpoint against
    latents and stack) before any computation or output.
    """
    from affinitomo.cluster.averages import open_stack
    from affinitomo.cluster.classifier_file import load_classifier, save_classifier
    from affinitomo.cluster.run_info import resolve_tomograms, run_info
    from affinitomo.evaluate import evaluate, pose_error
    from affinitomo.geometry import euler_to_matrix, matrix_to_euler
    from affinitomo.cluster.poses import SOURCES, combine_poses
    from affinitomo.io.particles import ANGLES, read_particles, write_particles

    options = options or StageOptions(ClusterOptions(), ClassifyOptions())
    out_dir = Path(out_dir)
    stacks = [stack_path] if isinstance(stack_path, (str, Path)) else stack_path  # one, or one per tomogram
    for given, name in ((training_log, "training log"), *((s, "subtomogram stack") for s in stacks or []),
                        (classifier_path, "classifier"), (checkpoint, "checkpoint")):
        _check_file(given, name)
    if particle_diameter is not None and not particle_diameter > 0:
        raise InputError("--particle-diameter", None, f"a positive number (Å), got {particle_diameter}")
    tomogram_paths = resolve_tomograms(tomograms or [])
    table = read_particles(particles_path)
    latents = align_to_table(read_latents(latents_path), table, latents_path, particles_path)
    xy = embedding_for(table, embedding_path, particles_path)
    if options.cluster.space == "umap" and not np.isfinite(xy).all():
        raise InputError(embedding_path, "UMAP0/UMAP1", f"finite map coordinates for clustering in the UMAP "
                                                        f"(space: umap); {int((~np.isfinite(xy).all(1)).sum())} "
                                                        f"particles have none")
    scores = None
    if match_scores:
        from affinitomo.match.scores import read_scores

        scores = read_scores(match_scores, table, particles_path)
    matched = None
    if match_poses:
        from affinitomo.cluster.poses import read_match_poses

        matched = read_match_poses(match_poses, table, particles_path)
    matrix = read_matrix(matrix_path)
    stored = None
    if classifier_path is not None:
        stored = load_classifier(classifier_path, latent_dims=latents.mu.shape[1],
                                 matrix_names=None if matrix is None else matrix[0], matrix_path=matrix_path,
                                 trust_pickle=trust_pickle)
        stored["path"] = Path(classifier_path).resolve()
    stack = open_stack(stack_path, len(table)) if stack_path is not None else None
    model, ckpt = None, None
    if checkpoint is not None:  # checked whenever given; decoder plots need the stack too
        from affinitomo.cluster.decoded import load_checked_model

        model, ckpt = load_checked_model(checkpoint, latents.mu.shape[1], latents.pose.shape[1],
                                         None if stack is None else stack.shape[1])
        if stack is None:
            model = None
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
    n = len(table)
    n_unknown = int(np.sum(unknown))
    log.info("%d of %d particles unknown (threshold %s)", n_unknown, n, cl.calibration.get("threshold"))

    px = pd.to_numeric(table["afmPixelSize"], errors="coerce").to_numpy(float) if "afmPixelSize" in table else None
    voxel = float(np.nanmedian(px)) if px is not None and np.isfinite(px).any() else None
    use_stack = stack is not None and (options.align.align_unknown or options.align.align_regroup)
    if use_stack and voxel is None:
        log.warning("no afmPixelSize in %s: the unknown groups are neither regrouped nor aligned (model's poses)",
                    particles_path)
    use_stack = use_stack and voxel is not None
    if use_stack:
        from affinitomo.similarity.score import default_device

        device = str(default_device())
    if use_stack and options.align.align_regroup and options.cluster.unknown == "separate":
        from affinitomo.cluster.clustering import cluster_counts, with_unknown_groups
        from affinitomo.cluster.regroup import regroup_unknown

        regrouped, cluster_info["regroup"] = regroup_unknown(stack, points, unknown, voxel, options.cluster,
                                                             options.align, device)
        if regrouped is not None:
            clusters = with_unknown_groups(clusters, unknown, regrouped)
            cluster_info.update(cluster_counts(clusters))

    aligned = {}
    if use_stack and options.align.align_unknown:
        from affinitomo.cluster.align import align_unknown_groups

        aligned, groups = align_unknown_groups(stack, np.where(unknown, clusters, -1), voxel, options.align, device)
        clusters = np.where(unknown, groups, clusters)
    competed = None
    if aligned and matched is not None and options.align.align_compete:
        from affinitomo.cluster.compete import class_references, compete

        references = class_references(stack, labels, labelled, matched.template, matched.rotation, voxel,
                                      options.align)
        competed = compete(stack, cl.assigned, groups, labelled, references, aligned, matched.template, voxel,
                           options.align, UNKNOWN, device)
        clusters = moved_clusters(clusters, cl.assigned, competed.assigned, competed.groups)
        cl.assigned = competed.assigned.astype(str)
        unknown = cl.assigned == UNKNOWN
        cluster_info["compete"] = competed.counts
    numbers, classes = class_numbers(cl.known, cl.assigned, clusters, cl.trained)
    rotation, pose_source = combine_poses(cl.assigned, cl.trained, latents.rotation, matched,
                                          table[ANGLES].to_numpy(float))
    if aligned:
        if rotation is None:
            rotation = euler_to_matrix(*table[ANGLES].to_numpy(float).T)
        for group in aligned.values():
            stays = unknown[group["rows"]]  # not moved into a known class
            rotation[group["rows"][stays]] = group["rotation"][stays]
            pose_source[group["rows"][stays]] = "group"
        if competed is not None:
            rotation[competed.into_groups] = competed.rotation
            pose_source[competed.into_groups] = "group"
        if competed is not None and options.align.align_refresh:
            from affinitomo.cluster.align import refresh_groups

            refreshed = refresh_groups(stack, aligned, competed.groups, voxel, options.align, device)
            for g, group in refreshed.items():
                if group is not aligned[g]:  # rebuilt: its rows are all in the group now
                    rotation[group["rows"]] = group["rotation"]
            aligned = refreshed
    angles = None
    if rotation is not None:  # rows whose pose is the input's keep its angles as given
        angles = table[ANGLES].to_numpy(float).copy()
        posed = pose_source != "input"
        angles[posed] = matrix_to_euler(rotation[posed])
    results = build_table(table, assigned=cl.assigned, numbers=numbers, clusters=clusters,
                          confidence=cl.confidence, distance=cl.distance, umap_xy=xy, labelled=labelled,
                          angles=angles)
    results["afmPoseSource"] = pose_source.astype(str)

    metrics = None
    truth_names = None
    if truth_path is not None:
        truth = truth_for(table, truth_path, particles_path)
        truth_names = truth["afmClassName"].to_numpy().astype(str)
        ev = (~labelled) & (truth_names != "")
        if not ev.any():
            raise InputError(truth_path, "afmClassName", "true classes for at least one unlabelled particle")
        metrics = evaluate(truth_names[ev], cl.assigned[ev], numbers[ev], clusters[ev], cl.trained,
                           points=points[ev], seed=options.cluster.seed)
        metrics["n_labelled"] = int(labelled.sum())
        metrics["open_set"] = cl.calibration
        metrics["clustering"] = cluster_info
        metrics["alignment"] = {unknown_group_name(g): {"n": int(a["rows"].size), "mean_score": a["score"],
                                                        "moved_in": a["moved_in"]} for g, a in aligned.items()}
        metrics["options"] = {"cluster": asdict(options.cluster), "classify": asdict(cl.classifier.options)
                              if cl.classifier is not None else asdict(options.classify),
                              "align": asdict(options.align)}
        if rotation is not None and all(c in truth.columns for c in ("rlnAngleRot", "rlnAngleTilt",
                                                                                "rlnAnglePsi")):
            true_rot = euler_to_matrix(*(truth[c].to_numpy(float) for c in ("rlnAngleRot", "rlnAngleTilt",
                                                                              "rlnAnglePsi")))
            ok = ev & np.all(np.isfinite(true_rot.reshape(n, -1)), axis=1)
            metrics["pose_error"] = pose_error(rotation[ok], true_rot[ok], truth_names[ok])
            metrics["pose_error"]["sources"] = {s: int(np.sum(pose_source[ok] == s)) for s in SOURCES}
        log.info("f1_macro=%s ari=%.3f nmi=%.3f on %d held-out particles", metrics["f1_macro"], metrics["ari"],
                 metrics["nmi"], int(ev.sum()))
    prior = None
    if matrix is not None:
        if truth_names is not None:
            prior = latent_prior(latents.mu, truth_names, matrix, "true classes, all particles")
        else:
            prior = latent_prior(latents.mu, cl.assigned.astype(str), matrix, "assigned known classes")
        if metrics is not None:
            metrics["prior_spearman"] = prior["rho"]
            metrics["prior_spearman_basis"] = prior["basis"]
        log.info("prior vs latent class similarity: Spearman rho %s (%s)", prior["rho"], prior["basis"])
    decoded = _decoded_views(model, ckpt, stack, latents, numbers, classes, options.cluster.seed) \
        if model is not None else None

    # Everything is computed; now write (each file atomically).
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_particles(out_dir / "particles.star", results)]
    written += write_class_stars(out_dir, results, classes)
    written.append(write_classes_csv(out_dir / "classes.csv", classes))
    if metrics is not None:
        written.append(write_json(out_dir / "metrics.json", metrics))
    classifier_out = None
    if cl.classifier is not None:
        classifier_out = save_classifier(out_dir / CLASSIFIER_NAME, cl.classifier, cl.known, cl.trained,
                                         latents.mu.shape[1], cl.space)
        written.append(classifier_out)
    written += write_plots(out_dir, results, metrics, Path(training_log) if training_log else None,
                           truth_names=np.where(truth_names == "", "(no truth)", truth_names)
                           if truth_names is not None else None)
    if prior is not None:
        from affinitomo.plots.latent_similarity import plot_latent_similarity

        written.append(plot_latent_similarity(out_dir / "latent_similarity.png", prior["names"], prior["matrix"],
                                              prior["cosine"], prior["rho"], prior["basis"]))
    if decoded is not None:
        written += _write_decoded(out_dir, decoded)
    if stack is not None:
        from affinitomo.cluster.averages import write_averages

        written += write_averages(out_dir, stack_path, numbers, dict(zip(classes["number"], classes["name"])),
                                  rotation, voxel)
    info = run_info(table, out_dir=out_dir, tomograms=tomogram_paths, particles=particles_path,
                    latents=latents_path, embedding=embedding_path, stack=stack_path, checkpoint=checkpoint,
                    classifier=classifier_out, umap=Path(embedding_path).parent / UMAP_NAME, matrix=matrix_path,
                    particle_diameter=particle_diameter)
    written.append(write_json(out_dir / RUN_INFO_NAME, info))
    log.info("wrote %d files to %s", len(written), out_dir)
    return {"n_particles": n, "n_unknown": n_unknown, "classes": classes, "metrics": metrics,
            "files": written}


def _decoded_views(model: Any, ckpt: dict, stack: np.ndarray, latents: Latents, numbers: np.ndarray,
                   classes: pd.DataFrame, seed: int) -> dict[str, Any] | None:
    """Reconstructions of a few particles per group and traversals around the largest group."""
    from affinitomo.cluster.decoded import pick_examples, reconstruct_rows, traversals
    from affinitomo.cluster.results import group_names

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
