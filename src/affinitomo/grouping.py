"""Unsupervised grouping of latents: Louvain communities of the kNN graph, HDBSCAN, k-means,
or a Gaussian mixture with k by BIC.

Every method returns integer labels, ``-1`` for HDBSCAN noise, clusters numbered
0, 1, ... by decreasing size (so ids are stable across methods and runs).

Why Louvain by default (``benchmarks/bench_shrec.py``, SHREC-like set, 12 proteins, SNR 0.1 on
3 splits and 0.03 on one, latents + template scores): the ARI of the clustering of all particles
against the true classes was 0.57-0.91 with Louvain and 0.07-0.45 with HDBSCAN, which left many
particles as noise and merged neighbouring molecules. The kNN-graph + modularity recipe is the
standard one for single-cell data (scanpy) for the same reason: no density threshold, no number
of clusters to give.

``graph_neighbors=15`` is the usual kNN-graph size (UMAP's ``n_neighbors``). ``resolution=0.5``
rather than modularity's textbook 1 was chosen on synthetic data, not on the benchmark: a single
Gaussian blob of 200 points in 16 dimensions (one molecule) stays one group at 0.5 and falls into
6-7 at 1, while two blobs 4 sigma apart still come out as two (``tests/test_cluster.py``). On the
SHREC-like set, unseen classes that got a group of purity > 0.8 holding most of the class:
8 of 16 at 0.5, 10 at 1 (which splits lone molecules), 6 at 0.25, 3 with HDBSCAN.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from affinitomo.errors import InputError
from affinitomo.options import from_known_keys

log = logging.getLogger(__name__)

METHODS = ("louvain", "hdbscan", "kmeans", "gmm")


@dataclass
class ClusterOptions:
    """Clustering settings.

    Defaults (chosen to scale with the data, not tuned to a demo):

    - ``method="louvain"``: communities of the symmetrised ``graph_neighbors``-nearest-neighbour
      graph, modularity at ``resolution`` (networkx, seeded): no noise, no k to choose;
    - ``min_cluster_size=None``: ``max(10, round(sqrt(N)))`` particles, i.e. ~3 % of
      1 000 particles and ~0.3 % of 100 000, so a rare new molecule can still form a group;
    - ``min_samples=None``: ``min(10, min_cluster_size)`` (HDBSCAN's density smoothing);
    - k-means ``n_clusters=None``: k in ``[2, k_max]`` with the best silhouette score on a
      subsample; GMM: k in ``[1, k_max]`` with the lowest BIC;
      ``k_max=None``: ``max(10, n_known + 5)`` (room for unseen classes);
    - ``max_fit=20000``: k-means/GMM model selection runs on at most this many particles;
    - ``unknown="separate"``: the particles the open-set classifier calls unknown are clustered
      again on their own (same method, sizes scaled to their number), so that each unseen
      molecule can form its own group instead of sharing a cluster with a known class or
      being one heap; ``"joint"`` keeps their clusters of the clustering of all particles.
      With structured latents (tests) only ``"separate"`` splits two unseen molecules that
      the joint clustering merged.
    """

    method: str = "louvain"
    space: str = "latent"  # "latent" (latent means, with template scores when given) or "umap"
    standardize: bool = False
    min_cluster_size: int | None = None
    min_samples: int | None = None
    n_clusters: int | None = None
    k_max: int | None = None
    covariance_type: str = "full"
    max_fit: int = 20000
    unknown: str = "separate"  # "separate" or "joint"
    graph_neighbors: int = 15  # louvain: neighbours per particle in the graph
    resolution: float = 0.5  # louvain: modularity resolution (higher: more, smaller groups)
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: Any = None) -> "ClusterOptions":
        opts = from_known_keys(cls, values, source, "a clustering option")
        opts.validate(source)
        return opts

    def validate(self, source: Any = None) -> None:
        if self.method not in METHODS:
            raise InputError(source, "method", f"one of {list(METHODS)}, got {self.method!r}")
        if self.unknown not in ("separate", "joint"):
            raise InputError(source, "unknown", f"'separate' or 'joint', got {self.unknown!r}")
        if self.space not in ("latent", "umap"):
            raise InputError(source, "space", f"'latent' or 'umap', got {self.space!r}")
        if not isinstance(self.resolution, (int, float)) or not self.resolution > 0:
            raise InputError(source, "resolution", f"a positive number, got {self.resolution!r}")
        for name in ("min_cluster_size", "min_samples", "n_clusters", "k_max", "graph_neighbors"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InputError(source, name, "a positive integer or null")
        if self.covariance_type not in ("full", "diag", "tied", "spherical"):
            raise InputError(source, "covariance_type", "full, diag, tied or spherical")


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0.. by decreasing size (ties by old id); -1 stays -1."""
    labels = np.asarray(labels, dtype=np.int64)
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    mapping = {int(old): new for new, old in enumerate(order)}
    out = np.full_like(labels, -1)
    for old, new in mapping.items():
        out[labels == old] = new
    return out


def _subsample(n: int, m: int, seed: int) -> np.ndarray:
    if n <= m:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, m, replace=False))


def hdbscan_labels(x: np.ndarray, opts: ClusterOptions) -> np.ndarray:
    """sklearn HDBSCAN with size-scaled defaults."""
    from sklearn.cluster import HDBSCAN

    n = len(x)
    mcs = opts.min_cluster_size or max(10, int(round(np.sqrt(n))))
    mcs = max(2, min(mcs, n))
    ms = min(opts.min_samples or min(10, mcs), n)
    log.info("HDBSCAN on %d points (min_cluster_size=%d, min_samples=%d)", n, mcs, ms)
    return HDBSCAN(min_cluster_size=mcs, min_samples=ms, copy=True).fit_predict(x)


def louvain_labels(x: np.ndarray, opts: ClusterOptions) -> np.ndarray:
    """Louvain communities (networkx) of the symmetrised kNN graph of ``x``."""
    import networkx as nx
    from sklearn.neighbors import kneighbors_graph

    n = len(x)
    k = max(1, min(opts.graph_neighbors, n - 1))
    graph = kneighbors_graph(x, k, mode="connectivity", include_self=False)
    graph = graph.maximum(graph.T)
    log.info("Louvain on the %d-nearest-neighbour graph of %d points (resolution %g)", k, n, opts.resolution)
    communities = nx.community.louvain_communities(nx.from_scipy_sparse_array(graph),
                                                   resolution=opts.resolution, seed=opts.seed)
    labels = np.full(n, -1, dtype=np.int64)
    for i, members in enumerate(communities):
        labels[list(members)] = i
    return labels


def kmeans_labels(x: np.ndarray, opts: ClusterOptions, k_max: int) -> tuple[np.ndarray, dict[str, Any]]:
    """k-means; k given, or chosen by the silhouette score on a subsample."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(x)
    info: dict[str, Any] = {}
    if opts.n_clusters is not None:
        k = min(opts.n_clusters, n)
    else:
        sub = x[_subsample(n, min(opts.max_fit, 5000), opts.seed)]
        scores = {}
        for k in range(2, min(k_max, len(sub) - 1) + 1):
            lab = KMeans(k, n_init=4, random_state=opts.seed).fit_predict(sub)
            if len(np.unique(lab)) > 1:
                scores[k] = float(silhouette_score(sub, lab))
        k = max(scores, key=scores.get) if scores else 1
        info["silhouette_by_k"] = scores
        log.info("k-means: k=%d chosen by silhouette over k=2..%d", k, max(scores, default=1))
    info["k"] = int(k)
    return KMeans(k, n_init=4, random_state=opts.seed).fit_predict(x), info


def gmm_labels(x: np.ndarray, opts: ClusterOptions, k_max: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Gaussian mixture; k given, or the lowest BIC over k = 1..k_max (fitted on a subsample)."""
    from sklearn.mixture import GaussianMixture

    n = len(x)
    sub = x[_subsample(n, opts.max_fit, opts.seed)]
    info: dict[str, Any] = {}

    def fit(k: int) -> GaussianMixture:
        return GaussianMixture(k, covariance_type=opts.covariance_type, n_init=2, reg_covar=1e-5,
                               random_state=opts.seed).fit(sub)

    if opts.n_clusters is not None:
        best = fit(min(opts.n_clusters, len(sub)))
    else:
        bics: dict[int, float] = {}
        best, best_bic = None, np.inf
        for k in range(1, min(k_max, len(sub)) + 1):
            model = fit(k)
            bics[k] = float(model.bic(sub))
            if bics[k] < best_bic:
                best, best_bic = model, bics[k]
        info["bic_by_k"] = bics
        log.info("GMM: k=%d chosen by BIC over k=1..%d", best.n_components, max(bics))
    info["k"] = int(best.n_components)
    return best.predict(x), info


def standardize_columns(x: np.ndarray) -> np.ndarray:
    """Columns shifted to zero mean and scaled to unit standard deviation (constant columns: shift only)."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def cluster_counts(labels: np.ndarray) -> dict[str, int]:
    """``n_clusters`` and ``n_noise`` (-1) of labels numbered 0.."""
    labels = np.asarray(labels)
    return {"n_clusters": int(labels.max() + 1) if (labels >= 0).any() else 0, "n_noise": int((labels < 0).sum())}


def cluster_points(x: np.ndarray, opts: ClusterOptions | None = None,
                   n_known: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Cluster the rows of ``x`` (N, D). Returns (labels (N,), info dict for metrics/logs)."""
    opts = opts or ClusterOptions()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise InputError(None, "points", f"a non-empty (N, D) array, got {x.shape}")
    if opts.standardize:
        x = standardize_columns(x)
    k_max = opts.k_max or max(10, n_known + 5)
    info: dict[str, Any] = {"method": opts.method, "space": opts.space}
    if len(x) < 3:
        labels = np.zeros(len(x), dtype=np.int64)
    elif opts.method == "louvain":
        labels = louvain_labels(x, opts)
    elif opts.method == "hdbscan":
        labels = hdbscan_labels(x, opts)
    elif opts.method == "kmeans":
        labels, more = kmeans_labels(x, opts, k_max)
        info.update(more)
    else:
        labels, more = gmm_labels(x, opts, k_max)
        info.update(more)
    labels = relabel_by_size(labels)
    info.update(cluster_counts(labels))
    log.info("%s: %d clusters, %d noise points", opts.method, info["n_clusters"], info["n_noise"])
    return labels, info


def recluster_unknown(x: np.ndarray, clusters: np.ndarray, unknown: np.ndarray,
                      opts: ClusterOptions | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """``clusters`` of all particles with the ``unknown`` rows clustered again on their own.

    The unknown rows get new ids after the others' (noise stays -1); then all ids are renumbered
    by decreasing size. Returns (labels, info of the clustering of the unknown rows).
    """
    opts = opts or ClusterOptions()
    unknown = np.asarray(unknown, dtype=bool)
    out = np.asarray(clusters, dtype=np.int64).copy()
    if not unknown.any():
        return out, {"n_clusters": 0, "n_noise": 0}
    sub, info = cluster_points(np.asarray(x)[unknown], opts)
    return with_unknown_groups(out, unknown, sub), info


def with_unknown_groups(clusters: np.ndarray, unknown: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``clusters`` with the ``unknown`` rows given ``groups`` (one per unknown row, -1 noise) as new ids
    after the others'; all ids renumbered by decreasing size."""
    unknown = np.asarray(unknown, dtype=bool)
    out = np.asarray(clusters, dtype=np.int64).copy()
    kept = out[~unknown]
    offset = int(kept.max()) + 1 if kept.size else 0
    out[unknown] = np.where(np.asarray(groups) >= 0, np.asarray(groups) + offset, -1)
    return relabel_by_size(out)


def group_particles(x: np.ndarray, unknown: np.ndarray, opts: ClusterOptions | None = None,
                    n_known: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Clusters of all rows of ``x``; with ``unknown="separate"`` the ``unknown`` rows clustered again
    on their own (:func:`recluster_unknown`). Returns (labels, info)."""
    opts = opts or ClusterOptions()
    clusters, info = cluster_points(x, opts, n_known=n_known)
    if opts.unknown == "separate":
        clusters, info["unknown"] = recluster_unknown(x, clusters, unknown, opts)
        info.update(cluster_counts(clusters))
    return clusters, info
