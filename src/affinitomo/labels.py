"""Class names and numbers of the result tables, shared by every stage that reads or writes them.

Class numbers (``rlnClassNumber``, 1-based, RELION style):

- known classes are numbered 1..K in the similarity matrix's order (or sorted names
  when no matrix is given), whether or not any particle was assigned to them;
- particles called ``unknown`` get a number per cluster, K+1, K+2, ... in decreasing
  order of how many unknown particles the cluster holds (name ``unknown_c<cluster id>``
  in classes.csv and classes/), so a new molecule appears as its own group;
- unknown particles that HDBSCAN left as noise (cluster -1) get 0 (= unassigned) and no
  per-class STAR file.

``afmClassName`` is the known class or ``unknown`` (empty: not labelled).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

UNKNOWN = "unknown"
UNKNOWN_GROUP_PREFIX = f"{UNKNOWN}_c"  # + cluster id: the cluster stage's unknown groups (docs/architecture.md)


def unknown_group_name(cluster_id: int) -> str:
    """``unknown_c<id>`` for unknown particles of cluster ``id``."""
    return f"{UNKNOWN}_c{int(cluster_id)}"


def class_numbers(known: list[str], assigned: np.ndarray, clusters: np.ndarray,
                  trained: list[str] | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Per-particle class number, and the name/number table (``name,number,known,count``).

    ``known`` gives the numbering (matrix order); the ``known`` column is 1 for classes in
    ``trained`` (those with labelled particles, which the classifier can assign; default all).
    """
    trained_set = set(known if trained is None else trained)
    assigned = np.asarray(assigned).astype(str)
    clusters = np.asarray(clusters, dtype=np.int64)
    numbers = np.zeros(len(assigned), dtype=np.int64)
    rows = []
    for i, name in enumerate(known):
        sel = assigned == name
        numbers[sel] = i + 1
        rows.append({"name": name, "number": i + 1, "known": int(name in trained_set), "count": int(sel.sum())})
    unk = assigned == UNKNOWN
    cids, counts = np.unique(clusters[unk & (clusters >= 0)], return_counts=True)
    order = np.lexsort((cids, -counts))
    for j, k in enumerate(order):
        number = len(known) + 1 + j
        sel = unk & (clusters == cids[k])
        numbers[sel] = number
        rows.append({"name": unknown_group_name(cids[k]), "number": number, "known": 0, "count": int(sel.sum())})
    noise = unk & (clusters < 0)
    if noise.any():
        rows.append({"name": UNKNOWN, "number": 0, "known": 0, "count": int(noise.sum())})
    return numbers, pd.DataFrame(rows, columns=["name", "number", "known", "count"])


def group_names(numbers: np.ndarray, classes: pd.DataFrame) -> np.ndarray:
    """Per-particle group name (known class, ``unknown_c<id>``, or ``unknown``) from class numbers."""
    lookup = dict(zip(classes["number"], classes["name"]))
    return np.array([lookup.get(int(n), UNKNOWN) for n in numbers], dtype=object)


def safe_name(name: str) -> str:
    """A class name usable as a file stem."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name) or "_"


def labelled_mask(table: pd.DataFrame) -> np.ndarray:
    """True where ``afmClassName`` is a non-empty class name."""
    if "afmClassName" not in table.columns:
        return np.zeros(len(table), dtype=bool)
    names = table["afmClassName"].fillna("").astype(str).str.strip()
    return (names != "").to_numpy()
