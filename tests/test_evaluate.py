"""Metrics: per-class scores, confusion, fates, clustering scores, pose error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from affinitomo.evaluate import (best_global_rotation, class_fates, clustering_scores, confusion, evaluate,
                                 per_class_scores, pose_error, silhouette)
from affinitomo.geometry import angular_distance, random_matrices


def test_per_class_scores_by_hand():
    truth = np.array(["a", "a", "b", "b", "new", "new"])
    assigned = np.array(["a", "b", "b", "b", "unknown", "a"])
    s = per_class_scores(truth, assigned, ["a", "b"])
    assert s["a"]["precision"] == pytest.approx(0.5) and s["a"]["recall"] == pytest.approx(0.5)
    assert s["b"]["precision"] == pytest.approx(2 / 3) and s["b"]["recall"] == pytest.approx(1.0)
    assert s["b"]["f1"] == pytest.approx(0.8)
    assert s["unknown"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2,
                            "n_assigned": 1}


def test_confusion_rows_and_columns():
    c = confusion(np.array(["b", "a", "new"]), np.array(["b", "b", "unknown"]), ["a", "b", "unknown"])
    assert c["rows"] == ["a", "b", "new"] and c["columns"] == ["a", "b", "unknown"]
    assert c["counts"] == [[0, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_fates_purity_completeness():
    truth = np.array(["x"] * 6 + ["y"] * 4)
    clusters = np.array([0, 0, 0, 0, 1, -1, 0, 1, 1, 1])
    assigned = np.array(["unknown"] * 5 + ["a"] + ["a"] * 4)
    f = class_fates(truth, assigned, clusters, known=["a"])
    assert f["x"]["held_out"] and f["x"]["best_cluster"] == 0
    assert f["x"]["purity"] == pytest.approx(4 / 5) and f["x"]["completeness"] == pytest.approx(4 / 6)
    assert f["x"]["assigned"] == {"unknown": pytest.approx(5 / 6), "a": pytest.approx(1 / 6)}
    assert f["y"]["best_cluster"] == 1 and f["y"]["purity"] == pytest.approx(3 / 4)


def test_clustering_scores_invariant_to_names():
    truth = np.array(list("aabbcc"))
    assert clustering_scores(truth, np.array([5, 5, 1, 1, 9, 9])) == {"ari": 1.0, "nmi": pytest.approx(1.0)}


def test_silhouette_undefined_and_defined():
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
    assert silhouette(pts, np.zeros(40, int)) is None
    assert silhouette(pts, np.r_[np.zeros(20, int), np.ones(20, int)]) > 0.9
    labels = np.r_[np.zeros(20, int), -np.ones(20, int)]  # noise excluded -> one label left
    assert silhouette(pts, labels) is None


@pytest.mark.parametrize("side", ["right", "left"])
def test_best_global_rotation_recovers_offset_despite_outliers(side):
    rng = np.random.default_rng(1)
    true = random_matrices(200, rng)
    g = random_matrices(1, rng)[0]
    noise = Rotation.from_rotvec(rng.normal(0, np.radians(3), (200, 3))).as_matrix()
    pred = true @ noise @ g.T if side == "right" else g.T @ true @ noise
    pred[:30] = random_matrices(30, rng)  # 15 % garbage
    est = best_global_rotation(pred, true, side=side)
    assert angular_distance(est, g) < 2.0


def test_pose_error_per_class():
    rng = np.random.default_rng(2)
    true = random_matrices(90, rng)
    classes = np.repeat(["a", "b", "c"], 30)
    offsets = {c: random_matrices(1, rng)[0] for c in "abc"}
    pred = np.stack([t @ offsets[c].T for t, c in zip(true, classes)])
    out = pose_error(pred, true, classes)
    assert out["median_deg"] < 1e-3
    assert set(out["per_class"]) == {"a", "b", "c"}
    random_pred = random_matrices(90, rng)
    assert pose_error(random_pred, true, classes)["median_deg"] > 45


def test_evaluate_top_level_keys():
    truth = np.array(["a"] * 5 + ["b"] * 5 + ["new"] * 4)
    assigned = np.array(["a"] * 5 + ["b"] * 5 + ["unknown"] * 4)
    clusters = np.repeat([0, 1, 2], [5, 5, 4])
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(14, 3)) + clusters[:, None] * 10
    m = evaluate(truth, assigned, clusters, clusters, ["a", "b"], points=pts)
    assert m["f1_macro"] == 1.0 and m["ari"] == 1.0 and m["nmi"] == pytest.approx(1.0)
    assert m["fates"]["new"]["assigned"] == {"unknown": 1.0} and m["fates"]["new"]["purity"] == 1.0
    assert m["silhouette"] > 0.5 and m["accuracy_known"] == 1.0


def test_fates_of_final_groups():
    """Group 0 (unassigned) is never best; purity counts every particle of the group."""
    truth = np.array(["x"] * 6 + ["y"] * 4)
    clusters = np.zeros(10, dtype=int)  # one heap
    groups = np.array([3, 3, 3, 0, 0, 0, 2, 2, 2, 3])
    assigned = np.array(["unknown"] * 6 + ["a"] * 3 + ["unknown"])
    f = class_fates(truth, assigned, clusters, known=["a"], groups=groups)
    assert f["x"]["best_group"] == 3 and f["x"]["group_purity"] == pytest.approx(3 / 4)
    assert f["x"]["group_completeness"] == pytest.approx(3 / 6)
    assert f["y"]["best_group"] == 2 and f["y"]["group_purity"] == 1.0
    assert f["x"]["purity"] == pytest.approx(6 / 10)  # the cluster view is unchanged
    assert "best_group" not in class_fates(truth, assigned, clusters, known=["a"])["x"]
