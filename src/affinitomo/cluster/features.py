"""What the cluster stage classifies and groups: the latent means, optionally with the
template-matching scores of each particle (``scores.csv`` of the ``match`` stage).

With scores, every column (latent dimensions and one score per template) is standardised to
zero mean and unit variance over the particles of the fitting run, so that neither block
dominates by scale; the same shift and scale are stored with the classifier and reused when
it classifies new data. Without scores the latents are used as they are.

Why add the scores (``benchmarks/bench_shrec.py``, SHREC-like set, 8 known / 4 unseen proteins,
3 splits at SNR 0.1 and 0.03; the same models and open-set classifier): known-class macro F1
0.78-0.86 from the latents alone, 0.93-0.97 with the scores; unseen molecules called 'unknown'
78 % -> 99 % on average at SNR 0.1. The scores alone do as well on F1 (0.96 / 0.93); the latents
add the grouping of unseen molecules (ARI of the groups 0.71 vs 0.66 at SNR 0.03).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from affinitomo.errors import InputError


@dataclass
class FeatureSpace:
    """Column layout and standardisation of the classifier's features."""

    score_names: list[str] | None = None  # template names of the score columns; None: latents only
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @classmethod
    def fit(cls, mu: np.ndarray, score_names: list[str] | None = None,
            scores: np.ndarray | None = None) -> "FeatureSpace":
        """Latents alone, or latents + scores with their column means and standard deviations."""
        if scores is None:
            return cls()
        x = np.hstack([np.asarray(mu, float), np.asarray(scores, float)])
        sd = x.std(axis=0)
        return cls(list(score_names or []), x.mean(axis=0), np.where(sd > 0, sd, 1.0))

    @property
    def uses_scores(self) -> bool:
        return self.score_names is not None

    def describe(self) -> dict[str, Any]:
        return {"latents": True, "template_scores": self.score_names,
                "standardised": self.uses_scores}

    def transform(self, mu: np.ndarray, score_names: list[str] | None = None, scores: np.ndarray | None = None,
                  source: Any = None) -> np.ndarray:
        """(N, L [+ K]) features; the scores must name the same templates in the same order."""
        mu = np.asarray(mu, float)
        if not self.uses_scores:
            if scores is not None:
                raise InputError(source, "match scores", "none: this classifier was fitted on latents alone "
                                                         "(drop the template scores, or refit)")
            return mu
        if scores is None:
            raise InputError(source, "match scores", f"template-matching scores for {self.score_names} "
                                                     "(match stage, --match-scores): the classifier was fitted with them")
        if list(score_names or []) != self.score_names:
            raise InputError(source, "match scores", f"scores for the templates {self.score_names} in this order; "
                                                     f"got {list(score_names or [])}")
        x = np.hstack([mu, np.asarray(scores, float)])
        if x.shape[1] != self.mean.size:
            raise InputError(source, "latent_dims", f"{self.mean.size - len(self.score_names)} latent dimensions, "
                                                    f"got {mu.shape[1]}")
        return (x - self.mean) / self.scale
