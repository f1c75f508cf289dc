"""Known classes with an open set: a classifier on labelled latents plus an 'unknown' rule.

The classifier (k-nearest neighbours or logistic regression) gives each particle a
known class and a confidence. Separately, each particle gets an open-set score: its
Mahalanobis distance to the nearest known-class centroid, under the pooled
within-class covariance (Ledoit-Wolf shrinkage, so a few labels per class suffice).

The threshold is calibrated on held-out labelled data by cross-fitting: the labelled
particles are split into ``folds`` stratified folds; the centroids and covariance are
refitted without each fold and the held-out particles' scores recorded. The threshold
is the split-conformal quantile of these out-of-fold scores,
``s_(ceil((n+1) q))`` (q = ``quantile``, default 0.95), which bounds the rate at which
particles of the known classes are called 'unknown' by about ``1 - q`` whatever the
data (exchangeability is the only assumption). With fewer than ``1/(1-q)`` calibration
scores that order statistic does not exist and the largest score is used (stated in
the calibration record).

Why 0.95: it is the conventional false-alarm rate (alpha = 0.05) of a conformal test. 0.99
lets an unseen molecule that resembles a known one hide in it (on the demo the held-out
tripod went 84% to l_short at 0.99, 56% at 0.95 with 34% unknown), while each step lower
costs known particles at a rate of 1 - q.

Second open-set score (``neighbours``, when the unlabelled particles are given to ``fit``):
the fraction of labelled particles among a particle's k nearest neighbours in the pool of
all particles (labelled and not; whitened by the pooled within-class covariance). Labels
are a random subset of the known classes' particles, so around a known-class particle about
the labelled fraction f of the neighbours is labelled, while a molecule no one labelled sits
among unlabelled particles only (positive-unlabelled learning). Its calibration scores are the
labelled particles' own (leave-one-out) scores. k defaults to ``round(10 / f)`` in [10, 100],
so that a neighbourhood holds about 10 labelled particles where a known class is. Both tests
are combined as one conformal test: a particle is unknown when the smaller of its two
conformal p-values (distance large, labelled neighbours few) is below the ``1 - q`` quantile
of the same statistic on the calibration particles, which keeps the bound on known particles
called unknown at about ``1 - q``. Caveat: it assumes labels were not chosen by position in
latent space (e.g. only the most typical particles); then lower ``quantile`` or disable it.

Why on by default (``benchmarks/bench_shrec.py``, SHREC-like set, SNR 0.1, 8 known / 4 held-out
classes): on the models with class content in their latents (3 training choices on split 0, the
wedge-augmented semi-supervised one on splits 1 and 2) the distance alone ranked held-out above
known particles barely better than chance (ROC AUC 0.51-0.65) and the neighbour fraction clearly
better (0.69-0.83). With the same training choice on the 3 splits, held-out particles called
unknown went 1/19/10 % -> 6/23/18 %, known particles called unknown stayed at 2-4 %, and the
known-class macro F1 did not change (+-0.01). Its cost shows when the labelled particles,
trained with the affinity term, sit closer to each other than unlabelled particles of the same
classes (semi-supervised without augmentation: 26 % of the unlabelled known particles called
unknown, nominal 5 %, for 55 % of the held-out ones): calibrating on labelled particles kept out
of training would remove that bias.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from affinitomo.errors import InputError
from affinitomo.labels import UNKNOWN
from affinitomo.options import from_known_keys

log = logging.getLogger(__name__)


@dataclass
class ClassifyOptions:
    """Classifier and open-set settings."""

    classifier: str = "knn"  # "knn" or "logistic"
    n_neighbors: int = 10  # kNN: clipped to the number of labelled particles
    C: float = 1.0  # logistic regression inverse regularisation
    open_set: bool = True
    quantile: float = 0.95
    folds: int = 5
    neighbours: bool = True  # second open-set test: few labelled particles among the neighbours
    neighbours_k: int | None = None  # None: round(10 / labelled fraction), clipped to [10, 100]
    # which known class a particle the open set keeps gets: "scores" its best-scoring template or class reference
    # (multi-reference classification), "classifier" the classifier's; "auto": scores when given, else the classifier
    known_from: str = "auto"
    latents: bool = True  # false: classify and group on the template (or class-reference) scores alone
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: Any = None) -> "ClassifyOptions":
        opts = from_known_keys(cls, values, source, "a classifier option")
        if opts.classifier not in ("knn", "logistic"):
            raise InputError(source, "classifier", f"'knn' or 'logistic', got {opts.classifier!r}")
        if not 0.5 <= opts.quantile < 1:
            raise InputError(source, "quantile", "a number in [0.5, 1)")
        if opts.folds < 2:
            raise InputError(source, "folds", "an integer >= 2")
        if opts.n_neighbors < 1:
            raise InputError(source, "n_neighbors", "an integer >= 1")
        if opts.known_from not in ("auto", "classifier", "scores"):
            raise InputError(source, "known_from", f"'auto', 'classifier' or 'scores', got {opts.known_from!r}")
        if opts.neighbours_k is not None and (not isinstance(opts.neighbours_k, int) or opts.neighbours_k < 1):
            raise InputError(source, "neighbours_k", "a positive integer or null")
        return opts


@dataclass
class Prediction:
    """Per-particle output of :meth:`OpenSetClassifier.predict`."""

    label: np.ndarray  # (N,) str: known class or UNKNOWN
    known_label: np.ndarray  # (N,) str: the classifier's class, even where unknown
    confidence: np.ndarray  # (N,) top class probability; for unknown: 1 - conformal p-value
    distance: np.ndarray  # (N,) Mahalanobis distance to the nearest known-class centroid
    unknown: np.ndarray  # (N,) bool


class CentroidDistance:
    """Mahalanobis distance to the nearest class centroid, pooled shrunk covariance."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> "CentroidDistance":
        from sklearn.covariance import LedoitWolf

        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([x[y == c].mean(axis=0) for c in self.classes_])
        resid = x - self.centroids_[np.searchsorted(self.classes_, y)]
        if len(x) > 1:
            cov = LedoitWolf(assume_centered=True).fit(resid).covariance_
        else:
            cov = np.eye(x.shape[1])
        # A floor keeps the precision finite when latents collapse along a direction.
        floor = 1e-6 * max(float(np.trace(cov)) / cov.shape[0], 1e-12)
        self.precision_ = np.linalg.inv(cov + floor * np.eye(cov.shape[0]))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(N, K) distances to each centroid."""
        out = np.empty((len(x), len(self.centroids_)))
        for k, c in enumerate(self.centroids_):
            d = x - c
            out[:, k] = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, self.precision_, d), 0.0))
        return out

    def score(self, x: np.ndarray) -> np.ndarray:
        """(N,) distance to the nearest centroid."""
        return self.transform(x).min(axis=1)


class LabelledNeighbours:
    """Fraction of labelled particles among each particle's k nearest neighbours in a pool."""

    def fit(self, pool: np.ndarray, labelled: np.ndarray, whitening: np.ndarray,
            k: int | None = None) -> "LabelledNeighbours":
        """``pool`` (M, L) all particles, ``labelled`` (M,) bool, ``whitening`` (L, L) applied to rows."""
        from sklearn.neighbors import NearestNeighbors

        self.labelled_ = np.asarray(labelled, dtype=bool)
        self.whitening_ = whitening
        fraction = max(float(self.labelled_.mean()), 1e-9)
        self.k_ = int(min(k or np.clip(round(10 / fraction), 10, 100), len(pool) - 1))
        self.index_ = NearestNeighbors(n_neighbors=self.k_ + 1).fit(np.asarray(pool, float) @ whitening)
        return self

    def score(self, x: np.ndarray, pool_rows: np.ndarray | None = None) -> np.ndarray:
        """(N,) labelled fraction of the k neighbours; ``pool_rows`` (N,): the row's own pool index
        (-1 if not in the pool), never counted as its own neighbour."""
        _, idx = self.index_.kneighbors(np.asarray(x, float) @ self.whitening_, n_neighbors=self.k_ + 1)
        keep = np.ones(idx.shape, dtype=bool)
        if pool_rows is not None:
            keep &= idx != np.asarray(pool_rows)[:, None]
        keep &= np.cumsum(keep, axis=1) <= self.k_  # the k nearest that are not the row itself
        return (self.labelled_[idx] & keep).sum(axis=1) / self.k_


def lower_p_value(calibration: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Conformal p-value of ``values`` being this small: (1 + #{calibration <= v}) / (n + 1)."""
    s = np.sort(calibration)
    return (1.0 + np.searchsorted(s, values, side="right")) / (s.size + 1.0)


def upper_p_value(calibration: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Conformal p-value of ``values`` being this large: (1 + #{calibration >= v}) / (n + 1)."""
    s = np.sort(calibration)
    return (1.0 + s.size - np.searchsorted(s, values, side="left")) / (s.size + 1.0)


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index per sample; classes with fewer than 2 samples are never held out (-1)."""
    rng = np.random.default_rng(seed)
    fold = np.full(len(y), -1, dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if idx.size < 2:
            continue
        idx = rng.permutation(idx)
        k = min(folds, idx.size)
        fold[idx] = (np.arange(idx.size) + offset) % k
        offset += idx.size
    return fold


def conformal_threshold(scores: np.ndarray, quantile: float) -> tuple[float, str]:
    """Split-conformal threshold: the ceil((n+1) q)-th smallest score (or the max if n too small)."""
    s = np.sort(np.asarray(scores, dtype=float))
    n = s.size
    if n == 0:
        return math.inf, "no calibration scores: open set disabled"
    rank = math.ceil((n + 1) * quantile)
    if rank <= n:
        return float(s[rank - 1]), f"conformal: {rank}-th smallest of {n} out-of-fold scores (q={quantile})"
    return float(s[-1]), (f"largest of {n} out-of-fold scores (fewer than {math.ceil(1 / (1 - quantile)) - 1} "
                          f"needed for the q={quantile} conformal bound)")


class OpenSetClassifier:
    """kNN or logistic-regression classifier with a calibrated 'unknown' rule."""

    def __init__(self, options: ClassifyOptions | None = None):
        self.options = options or ClassifyOptions()

    def _make_classifier(self, n: int) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.options.classifier == "knn":
            return KNeighborsClassifier(n_neighbors=max(1, min(self.options.n_neighbors, n)))
        return make_pipeline(StandardScaler(), LogisticRegression(C=self.options.C, max_iter=2000))

    def fit(self, x: np.ndarray, y: np.ndarray, unlabelled: np.ndarray | None = None) -> "OpenSetClassifier":
        """Fit on labelled latents ``x`` (n, L) with class names ``y`` (n,).

        ``unlabelled`` (m, L): the other particles of the data set; with ``neighbours`` on they form,
        with ``x``, the pool of the labelled-neighbours test (pool rows: ``x`` first, then these).
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y).astype(str)
        if len(x) == 0:
            raise InputError(None, "afmClassName", "at least one labelled particle to fit a classifier")
        self.classes_ = np.unique(y)
        if len(self.classes_) > 1:
            self.model_ = self._make_classifier(len(x)).fit(x, y)
        else:
            self.model_ = None
        self.distance_ = CentroidDistance().fit(x, y)
        self.neighbours_ = None
        self.calibration_ = self._calibrate(x, y)
        if self.options.open_set and self.options.neighbours and unlabelled is not None and len(unlabelled) > 0:
            self._fit_neighbours(x, np.asarray(unlabelled, dtype=np.float64))
        self.threshold_ = self.calibration_["threshold"]
        log.info("open-set threshold %.3f (%s)", self.threshold_, self.calibration_["rule"])
        return self

    def _fit_neighbours(self, x: np.ndarray, unlabelled: np.ndarray) -> None:
        """The labelled-neighbours test and the combined (min p-value) conformal threshold."""
        pool = np.concatenate([x, unlabelled])
        flags = np.arange(len(pool)) < len(x)
        whitening = np.linalg.cholesky(self.distance_.precision_)
        self.neighbours_ = LabelledNeighbours().fit(pool, flags, whitening, self.options.neighbours_k)
        own = self.neighbours_.score(x, np.arange(len(x)))
        self.neighbour_scores_ = np.sort(own)
        held = np.isfinite(self.calibration_distances_)  # rows with an out-of-fold distance
        combined = self._combined_p(self.calibration_distances_[held], own[held])
        threshold, rule = conformal_threshold(-combined, self.options.quantile)
        self.p_threshold_ = -threshold
        self.calibration_.update({
            "score": self.calibration_["score"] + "; and the labelled fraction of the k nearest neighbours "
                     "among all particles (leave-one-out on the labelled ones); unknown when the smaller "
                     "conformal p-value of the two is below p_threshold",
            "neighbours_k": self.neighbours_.k_, "pool": int(len(pool)),
            "labelled_fraction": float(flags.mean()),
            "neighbour_score_median": float(np.median(self.neighbour_scores_)),
            "p_threshold": self.p_threshold_, "rule": rule + " of min(p_distance, p_neighbours)",
        })

    def _combined_p(self, distance: np.ndarray, neighbour: np.ndarray) -> np.ndarray:
        return np.minimum(upper_p_value(self.calibration_scores_, distance),
                          lower_p_value(self.neighbour_scores_, neighbour))

    def _calibrate(self, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        opts = self.options
        fold = stratified_folds(y, opts.folds, opts.seed)
        scores = []
        for f in range(int(fold.max()) + 1 if (fold >= 0).any() else 0):
            held = fold == f
            model = CentroidDistance().fit(x[~held], y[~held])
            scores.append(model.score(x[held]))
        rows = [np.flatnonzero(fold == f) for f in range(len(scores))]
        scores_arr = np.concatenate(scores) if scores else np.empty(0)
        self.calibration_scores_ = np.sort(scores_arr)
        self.calibration_distances_ = np.full(len(x), np.nan)  # per labelled row (nan: never held out)
        if scores:
            self.calibration_distances_[np.concatenate(rows)] = scores_arr
        if opts.open_set:
            threshold, rule = conformal_threshold(scores_arr, opts.quantile)
        else:
            threshold, rule = math.inf, "open set disabled by option"
        return {
            "score": "Mahalanobis distance to the nearest known-class centroid (pooled Ledoit-Wolf covariance)",
            "calibration": f"{int(fold.max()) + 1 if (fold >= 0).any() else 0}-fold stratified cross-fitting "
                           f"on the labelled particles",
            "quantile": opts.quantile,
            "n_calibration": int(scores_arr.size),
            "threshold": threshold,
            "rule": rule,
            "calibration_score_median": float(np.median(scores_arr)) if scores_arr.size else None,
        }

    def predict_known(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Closed-set class names and top probabilities."""
        if self.model_ is None:
            return np.full(len(x), self.classes_[0]), np.ones(len(x))
        proba = self.model_.predict_proba(x)
        cls = np.asarray(self.model_.classes_)
        return cls[proba.argmax(axis=1)], proba.max(axis=1)

    def p_value(self, distance: np.ndarray) -> np.ndarray:
        """Conformal p-value of each distance against the calibration scores."""
        if self.calibration_scores_.size == 0:
            return np.ones(len(distance))
        return upper_p_value(self.calibration_scores_, distance)

    def predict(self, x: np.ndarray, pool_rows: np.ndarray | None = None) -> Prediction:
        """Class (or 'unknown'), confidence and open-set distance per particle.

        ``pool_rows`` (N,): each row's index in the fitting pool (labelled rows first, then the
        ``unlabelled`` ones; -1 for new particles), so that no particle is its own neighbour.
        """
        x = np.asarray(x, dtype=np.float64)
        known_label, proba = self.predict_known(x)
        distance = self.distance_.score(x)
        if getattr(self, "neighbours_", None) is not None:
            p = self._combined_p(distance, self.neighbours_.score(x, pool_rows))
            unknown = p < self.p_threshold_
        else:
            p = self.p_value(distance)
            unknown = distance > self.threshold_
        label = np.where(unknown, UNKNOWN, known_label).astype(object)
        confidence = np.where(unknown, 1.0 - p, proba)
        return Prediction(label, known_label.astype(object), confidence, distance, unknown)
