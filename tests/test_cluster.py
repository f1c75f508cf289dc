"""Clustering methods and the open-set classifier on synthetic latents."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from affinitomo.cluster.classify import (ClassifyOptions, LabelledNeighbours, OpenSetClassifier,
                                         conformal_threshold, lower_p_value, stratified_folds, upper_p_value)
from affinitomo.errors import InputError
from affinitomo.grouping import ClusterOptions, cluster_points, recluster_unknown, relabel_by_size
from synthetic_latents import HELD_OUT, KNOWN, make_blobs


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(n=600, seed=3)


@pytest.mark.parametrize("method", ["louvain", "hdbscan", "kmeans", "gmm"])
def test_methods_recover_blobs(blobs, method):
    labels, info = cluster_points(blobs.mu, ClusterOptions(method=method, k_max=6))
    assert adjusted_rand_score(blobs.true_class.astype(str), labels) > 0.85
    assert info["n_clusters"] >= 3
    if method == "gmm":
        assert info["k"] == 4 and min(info["bic_by_k"], key=info["bic_by_k"].get) == 4
    if method == "kmeans":
        assert info["k"] == 4


def test_given_k_and_standardize(blobs):
    labels, info = cluster_points(blobs.mu, ClusterOptions(method="kmeans", n_clusters=2, standardize=True))
    assert info["k"] == 2 and set(labels.tolist()) == {0, 1}


def test_relabel_by_size_orders_ids():
    out = relabel_by_size(np.array([5, 5, -1, 2, 2, 2, 9]))
    assert out.tolist() == [1, 1, -1, 0, 0, 0, 2]


def test_tiny_input_is_one_cluster():
    labels, info = cluster_points(np.zeros((2, 3)))
    assert labels.tolist() == [0, 0] and info["n_clusters"] == 1


@pytest.mark.parametrize("bad", [{"method": "dbscan"}, {"space": "pca"}, {"min_cluster_size": 0},
                                 {"nonsense": 1}, {"resolution": 0}, {"resolution": "high"},
                                 {"graph_neighbors": 0}])
def test_bad_cluster_options(bad):
    with pytest.raises(InputError):
        ClusterOptions.from_dict(bad, source="opts.json")


@pytest.mark.parametrize("classifier", ["knn", "logistic"])
def test_open_set_flags_held_out_class(blobs, classifier):
    lab = blobs.table["afmClassName"].to_numpy().astype(str) != ""
    clf = OpenSetClassifier(ClassifyOptions(classifier=classifier)).fit(blobs.mu[lab], blobs.true_class[lab])
    pred = clf.predict(blobs.mu[~lab])
    truth = blobs.true_class[~lab].astype(str)
    novel = truth == HELD_OUT
    assert pred.unknown[novel].mean() > 0.9
    assert pred.unknown[~novel].mean() < 0.05
    assert np.mean(pred.label[~novel & ~pred.unknown] == truth[~novel & ~pred.unknown]) > 0.95
    assert np.all((pred.confidence >= 0) & (pred.confidence <= 1))
    assert set(clf.classes_) == set(KNOWN)
    assert clf.calibration_["n_calibration"] == lab.sum()


def test_open_set_disabled_and_single_class(blobs):
    x = blobs.mu[:50]
    y = np.array(["only"] * 50)
    clf = OpenSetClassifier(ClassifyOptions(open_set=False)).fit(x, y)
    pred = clf.predict(blobs.mu)
    assert not pred.unknown.any() and set(pred.label) == {"only"} and math.isinf(clf.threshold_)


def test_conformal_threshold():
    scores = np.arange(1, 200, dtype=float)  # 199 scores
    t, rule = conformal_threshold(scores, 0.99)
    assert t == 198.0 and "conformal" in rule  # ceil(200 * 0.99) = 198
    t, rule = conformal_threshold(np.array([3.0, 1.0, 2.0]), 0.99)
    assert t == 3.0 and "largest" in rule
    assert math.isinf(conformal_threshold(np.empty(0), 0.99)[0])


def test_stratified_folds_balanced_and_singletons_kept():
    y = np.array(["a"] * 10 + ["b"] * 7 + ["c"])
    fold = stratified_folds(y, 5, seed=0)
    assert fold[-1] == -1
    for c in "ab":
        counts = np.bincount(fold[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_calibrated_false_unknown_rate_generalises():
    """Known classes drawn afresh: the fraction called unknown stays near 1 - q."""
    rng = np.random.default_rng(7)
    centres = rng.normal(scale=5, size=(5, 8))
    y = np.repeat(np.arange(5), 200)
    x = centres[y] + rng.normal(size=(1000, 8)) * rng.uniform(0.5, 1.5, size=(1, 8))
    clf = OpenSetClassifier(ClassifyOptions(quantile=0.95)).fit(x, y.astype(str))
    y_new = rng.integers(0, 5, 5000)
    x_new = centres[y_new] + rng.normal(size=(5000, 8)) * 1.0
    rate = clf.predict(x_new).unknown.mean()
    assert rate < 0.15


def test_fit_without_labels_is_input_error():
    with pytest.raises(InputError):
        OpenSetClassifier().fit(np.empty((0, 4)), np.empty(0, dtype=str))


@pytest.mark.parametrize("bad", [{"classifier": "svm"}, {"quantile": 1.0}, {"folds": 1}, {"what": 2}])
def test_bad_classify_options(bad):
    with pytest.raises(InputError):
        ClassifyOptions.from_dict(bad)


def near_unknown_blobs(seed: int = 0, n_per: int = 150, offset: float = 3.0):
    """Three known classes; an unlabelled class ``offset`` sigma from the first (inside its distance
    quantile); 40 % of the known particles labelled."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    centres = np.concatenate([8.0 * q[:3], 8.0 * q[:1] + offset * q[3:4]])
    y = np.repeat(np.arange(4), n_per)
    x = centres[y] + rng.normal(size=(len(y), 8))
    labelled = (y < 3) & (rng.random(len(y)) < 0.4)
    return x, y, labelled


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_neighbour_test_finds_an_unknown_class_close_to_a_known_one(seed):
    """Distance alone keeps most of the close unseen class; few labelled neighbours give it away."""
    x, y, lab = near_unknown_blobs(seed)
    names = y.astype(str)
    pool_rows = np.full(len(y), -1)
    pool_rows[lab] = np.arange(lab.sum())
    pool_rows[~lab] = lab.sum() + np.arange((~lab).sum())
    rates = {}
    for neighbours in (False, True):
        clf = OpenSetClassifier(ClassifyOptions(neighbours=neighbours)).fit(x[lab], names[lab], unlabelled=x[~lab])
        unknown = clf.predict(x, pool_rows).unknown
        rates[neighbours] = (unknown[y == 3].mean(), unknown[(y < 3) & ~lab].mean())
    assert rates[False][0] < 0.6  # the distance test misses much of it
    assert rates[True][0] > 0.8 and rates[True][0] > rates[False][0] + 0.25  # the combined test finds it
    assert rates[True][1] < 0.1  # known particles stay known at about 1 - q
    assert clf.calibration_["neighbours_k"] == round(10 / lab.mean())  # ~10 labelled neighbours expected


def test_neighbour_test_needs_unlabelled_particles(blobs):
    lab = blobs.table["afmClassName"].to_numpy().astype(str) != ""
    a = OpenSetClassifier().fit(blobs.mu[lab], blobs.true_class[lab])
    b = OpenSetClassifier(ClassifyOptions(neighbours=False)).fit(blobs.mu[lab], blobs.true_class[lab],
                                                                unlabelled=blobs.mu[~lab])
    assert a.neighbours_ is None and b.neighbours_ is None
    np.testing.assert_array_equal(a.predict(blobs.mu).unknown, b.predict(blobs.mu).unknown)


def test_labelled_neighbours_excludes_itself():
    x = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
    flags = np.array([True, True, False, False, False, False])
    nb = LabelledNeighbours().fit(x, flags, np.eye(1), k=2)
    np.testing.assert_allclose(nb.score(x, np.arange(6)), [0.5, 0.5, 1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(nb.score(x[:1]), [1.0])  # a new point: its twin in the pool counts


def test_p_values():
    cal = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(upper_p_value(cal, np.array([0.0, 2.0, 4.0])), [1.0, 0.75, 0.25])
    np.testing.assert_allclose(lower_p_value(cal, np.array([0.0, 2.0, 4.0])), [0.25, 0.75, 1.0])


def test_recluster_unknown_gives_each_unseen_molecule_its_group():
    """Two unseen molecules that the joint clustering put in one cluster come out as two groups."""
    rng = np.random.default_rng(0)
    known = rng.normal(size=(200, 2))
    u1, u2 = rng.normal(size=(60, 2)) * 0.3 + [8, 0], rng.normal(size=(60, 2)) * 0.3 + [8, 3]
    x = np.concatenate([known, u1, u2])
    joint = np.array([0] * 200 + [1] * 120)  # one heap for both
    unknown = np.arange(len(x)) >= 200
    labels, info = recluster_unknown(x, joint, unknown, ClusterOptions(method="hdbscan", min_cluster_size=20))
    assert info["n_clusters"] == 2 and labels[0] == 0
    assert len(set(labels[200:260])) == 1 and len(set(labels[260:])) == 1 and labels[200] != labels[260]
    assert labels[200] not in (-1, 0) and labels[260] not in (-1, 0)
    same, _ = recluster_unknown(x, joint, np.zeros(len(x), bool))
    np.testing.assert_array_equal(same, joint)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_louvain_keeps_one_molecule_whole_and_splits_two(seed):
    """The default resolution: one Gaussian blob (16-D, 200 points) is one group; two 4 sigma apart are two."""
    rng = np.random.default_rng(seed)
    one, _ = cluster_points(rng.normal(size=(200, 16)))
    assert set(one.tolist()) == {0}
    shift = np.zeros(16)
    shift[0] = 4.0
    two, info = cluster_points(np.concatenate([rng.normal(size=(150, 16)), rng.normal(size=(150, 16)) + shift]))
    assert info["method"] == "louvain" and info["n_clusters"] == 2 and info["n_noise"] == 0
    assert adjusted_rand_score(np.repeat([0, 1], 150), two) > 0.85
    again, _ = cluster_points(np.concatenate([rng.normal(size=(20, 16))] * 2), ClusterOptions(graph_neighbors=500))
    assert again.min() >= 0  # k is clipped to n - 1


def test_bad_unknown_clustering_option():
    with pytest.raises(InputError):
        ClusterOptions.from_dict({"unknown": "merge"})
    with pytest.raises(InputError):
        ClassifyOptions.from_dict({"neighbours_k": 0})
