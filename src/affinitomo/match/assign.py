"""From scores to classes: best template, or 'unknown' below a threshold learnt from labelled particles."""

from __future__ import annotations

import logging

import numpy as np

from affinitomo.labels import UNKNOWN

log = logging.getLogger(__name__)


#: Labelled particles a class needs for a threshold of its own (else the pooled one is used).
MIN_LABELLED = 10


def unknown_threshold(scores: np.ndarray, own: np.ndarray, percentile: float, per_class: bool = True) -> np.ndarray | None:
    """Per template: the ``percentile`` of its labelled particles' scores for it, or None if none is labelled.

    ``own`` (N,): each particle's labelled template index, -1 when unlabelled. Scores scale
    with particle size and shape (a small protein's NCC is lower), so each class gets its
    own threshold; classes with fewer than ``MIN_LABELLED`` labelled particles use the
    percentile of all labelled particles' own-class scores (as all classes do when
    ``per_class`` is False).
    """
    own = np.asarray(own)
    rows = np.flatnonzero(own >= 0)
    if len(rows) == 0 or percentile <= 0:
        return None
    own_scores = scores[rows, own[rows]]
    pooled = float(np.percentile(own_scores, percentile))
    out = np.full(scores.shape[1], pooled)
    for c in range(scores.shape[1] if per_class else 0):
        mine = own_scores[own[rows] == c]
        if len(mine) >= MIN_LABELLED:
            out[c] = float(np.percentile(mine, percentile))
    return out


def assign(scores: np.ndarray, classes: list[str], threshold: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(names with 'unknown', 1-based class numbers with 0 = unknown, best template index) per particle.

    A particle is unknown when its best score is below the best template's threshold.
    """
    best = np.argmax(scores, axis=1)
    top = scores[np.arange(len(scores)), best]
    unknown = np.zeros(len(scores), dtype=bool) if threshold is None else top < np.asarray(threshold)[best]
    names = np.where(unknown, UNKNOWN, np.asarray(classes, dtype=object)[best]).astype(object)
    numbers = np.where(unknown, 0, best + 1).astype(np.int64)
    return names, numbers, best


def label_indices(labels: np.ndarray, classes: list[str], source: str = "particles") -> np.ndarray:
    """Template index of each particle's label (-1 for unlabelled or labels without a template)."""
    index = {name: i for i, name in enumerate(classes)}
    labels = np.asarray(labels).astype(str)
    out = np.array([index.get(lab, -1) for lab in labels], dtype=int)
    missing = sorted(set(labels[(out < 0) & (labels != "")]))
    if missing:
        log.warning("%s: labels without a template are ignored for the unknown threshold: %s", source, ", ".join(missing))
    return out
