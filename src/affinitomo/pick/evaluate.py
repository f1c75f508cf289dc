"""Picks against ground truth: one-to-one matching within a tolerance, precision and recall per class."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

XYZ = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]


def match_picks(picks: pd.DataFrame, truth: pd.DataFrame, tolerance: float | Mapping[str, float]) -> pd.DataFrame:
    """The truth table with ``matched`` (bool), ``error`` (pixels) and ``pick`` (row of the matched
    pick in ``picks``, -1 if none) per particle.

    Per tomogram, pick-truth pairs closer than the truth particle's tolerance (pixels; one
    number, or one per ``afmClassName``) are matched one to one, closest pairs first.
    """
    truth = truth.copy()
    truth.attrs = {}
    if isinstance(tolerance, Mapping):
        tol = truth["afmClassName"].map(tolerance).to_numpy(float)
        if np.isnan(tol).any():
            raise ValueError(f"no tolerance for classes {sorted(set(truth['afmClassName'][np.isnan(tol)]))}")
    else:
        tol = np.full(len(truth), float(tolerance))
    truth["matched"] = False
    truth["error"] = np.nan
    truth["pick"] = -1
    pick_matched = np.zeros(len(picks), dtype=bool)
    for name, rows in truth.groupby("rlnTomoName").indices.items():
        cols = np.flatnonzero((picks["rlnTomoName"] == name).to_numpy())
        if len(cols) == 0:
            continue
        t_xyz, p_xyz = truth[XYZ].to_numpy(float)[rows], picks[XYZ].to_numpy(float)[cols]
        pairs = cKDTree(t_xyz).sparse_distance_matrix(cKDTree(p_xyz), max_distance=float(tol[rows].max()), output_type="coo_matrix")
        order = np.argsort(pairs.data, kind="stable")
        used_t, used_p = set(), set()
        for k in order:
            i, j, d = pairs.row[k], pairs.col[k], pairs.data[k]
            if i in used_t or j in used_p or d > tol[rows[i]]:
                continue
            used_t.add(i)
            used_p.add(j)
            truth.iloc[rows[i], truth.columns.get_loc("matched")] = True
            truth.iloc[rows[i], truth.columns.get_loc("error")] = d
            truth.iloc[rows[i], truth.columns.get_loc("pick")] = cols[j]
            pick_matched[cols[j]] = True
    truth.attrs["picks_matched"] = int(pick_matched.sum())
    return truth


def pick_metrics(picks: pd.DataFrame, truth: pd.DataFrame, tolerance: float | Mapping[str, float]) -> dict:
    """``precision``, ``recall``, ``f1``, ``n_picks``, ``n_truth`` and ``recall_per_class``."""
    matched = match_picks(picks, truth, tolerance)
    tp = matched.attrs["picks_matched"]
    precision = tp / len(picks) if len(picks) else 0.0
    recall = tp / len(truth) if len(truth) else 0.0
    per_class = matched.groupby("afmClassName")["matched"].mean()
    return {
        "n_picks": int(len(picks)),
        "n_truth": int(len(truth)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
        "median_error_px": float(matched["error"].median()),
        "recall_per_class": {str(k): float(v) for k, v in per_class.items()},
    }
