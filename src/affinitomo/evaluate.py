"""Metrics against ground truth: classification, clustering, open-set fates, pose error.

All functions take plain arrays; :func:`evaluate` assembles the ``metrics.json`` dict.
Callers pass only particles that were *not* labelled for training.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from affinitomo.geometry import angular_distance, nearest_rotation
from affinitomo.labels import UNKNOWN


def per_class_scores(truth: np.ndarray, assigned: np.ndarray, classes: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class name.

    For a known class c the positives are particles assigned c and the relevant ones are
    particles truly c. For ``unknown``, the relevant particles are those whose true class
    is not among ``classes`` (held out), so its row scores novelty detection.
    """
    truth = np.asarray(truth).astype(str)
    assigned = np.asarray(assigned).astype(str)
    out: dict[str, dict[str, float]] = {}
    novel = ~np.isin(truth, classes)
    for name in list(classes) + [UNKNOWN]:
        rel = novel if name == UNKNOWN else truth == name
        pos = assigned == name
        tp = float(np.sum(rel & pos))
        precision = tp / pos.sum() if pos.sum() else 0.0
        recall = tp / rel.sum() if rel.sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(rel.sum()),
                     "n_assigned": int(pos.sum())}
    return out


def confusion(truth: np.ndarray, assigned: np.ndarray, columns: list[str]) -> dict[str, Any]:
    """Counts with rows = true classes (sorted), columns = ``columns`` (+ any other assigned label)."""
    truth = np.asarray(truth).astype(str)
    assigned = np.asarray(assigned).astype(str)
    rows = sorted(np.unique(truth).tolist())
    cols = list(columns) + sorted(set(np.unique(assigned).tolist()) - set(columns))
    counts = np.zeros((len(rows), len(cols)), dtype=np.int64)
    r = {name: i for i, name in enumerate(rows)}
    c = {name: j for j, name in enumerate(cols)}
    np.add.at(counts, (np.array([r[t] for t in truth], dtype=np.int64),
                       np.array([c[a] for a in assigned], dtype=np.int64)), 1)
    return {"rows": rows, "columns": cols, "counts": counts.tolist()}


def _best_group(ids: np.ndarray, sel: np.ndarray, excluded: int) -> tuple[int, float, float] | None:
    """(id, purity, completeness) of the group holding most of ``sel``; ``excluded`` is never best."""
    gids, counts = np.unique(ids[sel], return_counts=True)
    real = gids != excluded
    if not real.any():
        return None
    best = int(gids[real][np.argmax(counts[real])])
    inside = int(counts[gids == best][0])
    return best, inside / int(np.sum(ids == best)), inside / int(sel.sum())


def class_fates(truth: np.ndarray, assigned: np.ndarray, clusters: np.ndarray,
                known: list[str], groups: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    """Where each true class went: fractions per assigned label and per cluster, and its best cluster.

    ``purity`` of the best cluster is the fraction of that cluster's particles that are this class;
    ``completeness`` is the fraction of the class's particles in that cluster. Noise (-1) is never
    a best cluster. With ``groups`` (the final class numbers: known classes, then one number per
    unknown group, 0 = unassigned) the same is reported for the best group (``best_group``,
    ``group_purity``, ``group_completeness``; group 0 is never best): the grouping a user gets.
    """
    truth = np.asarray(truth).astype(str)
    assigned = np.asarray(assigned).astype(str)
    clusters = np.asarray(clusters, dtype=np.int64)
    groups = None if groups is None else np.asarray(groups, dtype=np.int64)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(np.unique(truth).tolist()):
        sel = truth == name
        n = int(sel.sum())
        labels, counts = np.unique(assigned[sel], return_counts=True)
        cids, ccounts = np.unique(clusters[sel], return_counts=True)
        fate: dict[str, Any] = {
            "n": n,
            "held_out": name not in known,
            "assigned": {str(k): float(v) / n for k, v in sorted(zip(labels, counts), key=lambda t: -t[1])},
            "clusters": {str(int(k)): float(v) / n for k, v in sorted(zip(cids, ccounts), key=lambda t: -t[1])},
        }
        best = _best_group(clusters, sel, -1)
        if best is not None:
            fate["best_cluster"], fate["purity"], fate["completeness"] = best
        best = None if groups is None else _best_group(groups, sel, 0)
        if best is not None:
            fate["best_group"], fate["group_purity"], fate["group_completeness"] = best
        out[name] = fate
    return out


def clustering_scores(truth: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """ARI and NMI of a grouping against the true classes."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    truth = np.asarray(truth).astype(str)
    groups = np.asarray(groups).astype(str)
    return {"ari": float(adjusted_rand_score(truth, groups)),
            "nmi": float(normalized_mutual_info_score(truth, groups))}


def silhouette(points: np.ndarray, labels: np.ndarray, max_points: int = 5000, seed: int = 0) -> float | None:
    """Silhouette score on a random subsample (it is O(n^2)); noise (-1) excluded; None if undefined."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    keep = np.flatnonzero(labels.astype(str) != "-1")
    if keep.size > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_points, replace=False))
    n_labels = len(np.unique(labels[keep]))
    if n_labels < 2 or n_labels >= keep.size:
        return None
    return float(silhouette_score(np.asarray(points)[keep], labels[keep]))


def best_global_rotation(pred: np.ndarray, true: np.ndarray, side: str = "right",
                         iterations: int = 20) -> np.ndarray:
    """The single rotation G that best aligns predicted to true rotations.

    ``side="right"``: true ≈ pred @ G (the model's reference frame differs from the true
    template's by G, the ambiguity a learnt reference has); ``side="left"``: true ≈ G @ pred.
    Start from the chordal mean of the per-particle G estimates (average projected onto SO(3)),
    then refine towards the geodesic median by reweighting each estimate by 1/angle
    (Weiszfeld), which ignores outliers such as symmetry-related flips.
    """
    pred = np.asarray(pred, dtype=float)
    true = np.asarray(true, dtype=float)
    if side == "right":
        est = np.einsum("nji,njk->nik", pred, true)  # pred^T true
    elif side == "left":
        est = np.einsum("nij,nkj->nik", true, pred)  # true pred^T
    else:
        raise ValueError("side must be 'right' or 'left'")
    g = nearest_rotation(est.mean(axis=0))
    for _ in range(iterations):
        angles = np.radians(angular_distance(np.broadcast_to(g, est.shape), est))
        w = 1.0 / np.maximum(angles, 1e-3)
        g_new = nearest_rotation(np.einsum("n,nij->ij", w, est))
        if float(angular_distance(g_new, g)) < 1e-4:
            g = g_new
            break
        g = g_new
    return g


def pose_error(pred: np.ndarray, true: np.ndarray, classes: np.ndarray, min_particles: int = 3) -> dict[str, Any]:
    """Per true class: median angular error (degrees) after the best global alignment.

    Both sides of the ambiguity are reported; ``median_deg`` uses the right (reference-frame)
    alignment. Rotational symmetry of a protein is not accounted for.
    """
    classes = np.asarray(classes).astype(str)
    per_class: dict[str, Any] = {}
    medians = []
    for name in sorted(np.unique(classes).tolist()):
        sel = classes == name
        if sel.sum() < min_particles:
            continue
        entry: dict[str, Any] = {"n": int(sel.sum())}
        for side in ("right", "left"):
            g = best_global_rotation(pred[sel], true[sel], side=side)
            aligned = pred[sel] @ g if side == "right" else g @ pred[sel]
            err = angular_distance(aligned, true[sel])
            key = "median_deg" if side == "right" else "median_deg_left"
            entry[key] = float(np.median(err))
            if side == "right":
                entry["mean_deg"] = float(np.mean(err))
                entry["fraction_below_30deg"] = float(np.mean(err < 30))
        per_class[name] = entry
        medians.append(entry["median_deg"])
    return {"alignment": "true ~= pred @ G per class (G: geodesic median), degrees",
            "median_deg": float(np.median(medians)) if medians else None, "per_class": per_class}


def evaluate(truth: np.ndarray, assigned: np.ndarray, groups: np.ndarray, clusters: np.ndarray,
             known: list[str], points: np.ndarray | None = None, seed: int = 0) -> dict[str, Any]:
    """Classification, clustering and open-set metrics for the evaluated particles.

    ``assigned``: class names or 'unknown'; ``groups``: the final group per particle (class
    number, unknowns split by cluster); ``clusters``: cluster ids (-1 noise); ``known``: classes
    the classifier was trained on; ``points``: the clustered coordinates for silhouettes.
    """
    truth = np.asarray(truth).astype(str)
    scores = per_class_scores(truth, assigned, known)
    known_present = [c for c in known if scores[c]["support"] > 0]
    f1 = [scores[c]["f1"] for c in known_present]
    out: dict[str, Any] = {
        "n_evaluated": int(truth.size),
        "f1_macro": float(np.mean(f1)) if f1 else None,
        "f1_macro_classes": known_present,
        **clustering_scores(truth, groups),
        "accuracy_known": float(np.mean(np.asarray(assigned).astype(str)[np.isin(truth, known)]
                                        == truth[np.isin(truth, known)])) if np.isin(truth, known).any() else None,
        "per_class": scores,
        "clusters": clustering_scores(truth, clusters),
        "confusion": confusion(truth, assigned, list(known) + [UNKNOWN]),
        "fates": class_fates(truth, assigned, clusters, list(known), groups),
    }
    if points is not None:
        out["silhouette"] = silhouette(points, clusters, seed=seed)
        out["silhouette_truth"] = silhouette(points, truth, seed=seed)
    return out
