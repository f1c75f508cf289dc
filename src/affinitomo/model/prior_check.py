"""Evidence that the affinity prior works: latent class similarities vs the matrix."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def class_mean_cosine(mu: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) cosine similarity of the class-mean latent vectors (NaN rows for absent classes)."""
    means = np.full((n_classes, mu.shape[1]), np.nan)
    for c in range(n_classes):
        if (labels == c).any():
            means[c] = mu[labels == c].mean(0)
    unit = means / np.linalg.norm(means, axis=1, keepdims=True).clip(1e-12)
    return unit @ unit.T


def prior_spearman(mu: np.ndarray, labels: np.ndarray, matrix: np.ndarray) -> float:
    """Spearman's rho between class-mean latent cosine similarities and the matrix (pairs i<j).

    ``labels`` index ``matrix``'s classes; -1 (unlabelled) rows are ignored. NaN when fewer
    than three class pairs are present.
    """
    cos = class_mean_cosine(np.asarray(mu, float), np.asarray(labels), len(matrix))
    iu = np.triu_indices(len(matrix), 1)
    a, b = cos[iu], np.asarray(matrix, float)[iu]
    ok = np.isfinite(a)
    if ok.sum() < 3:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)
