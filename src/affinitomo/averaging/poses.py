"""Each particle's pose in the results: template matching's where it matched the assigned class,
otherwise the model's.

A particle assigned a known class whose best template (``match`` stage, ``afmMatchTemplate``) is
that class takes template matching's pose: it comes from a rotation search against the class's
own template followed by local refinement. On the SHREC-like set its median error was 0.8-1.6
degrees for the large asymmetric proteins, against 3-6 degrees from the rotation decoder, which
also failed on one of them in one split (73 degrees; ``docs/benchmarks.md``). The other
particles of such a class keep the model's pose, turned into the template's frame by the class's
single global rotation (geodesic median over the particles that have both poses), so that one


class shares one frame. Particles called 'unknown' keep the model's pose. Without a model pose
(CNN decoder) they keep the input table's angles. Members of unknown groups are then aligned
within their group (:mod:`affinitomo.averaging.align`). ``afmPoseSource`` says which: match, model,
group or input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from affinitomo.errors import InputError
from affinitomo.geometry import euler_to_matrix
from affinitomo.io.particles import ANGLES, read_particles

TEMPLATE = "afmMatchTemplate"


@dataclass
class MatchPoses:
    """Template matching's best template and its pose, per row of the results table."""

    template: np.ndarray  # (N,) str
    rotation: np.ndarray  # (N, 3, 3)


def read_match_poses(paths: str | Path | Sequence[str | Path], table: pd.DataFrame,
                     table_path: Any = None) -> MatchPoses:
    """``particles.star`` of the match stage (one, or one per tomogram), aligned to ``table``."""
    from affinitomo.io.particles import concat_tables
    from affinitomo.io.tables import rows_for_table

    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    frames = []
    for path in paths:
        frame = read_particles(path)
        for col in ("afmParticleId", TEMPLATE, *ANGLES):
            if col not in frame.columns:
                raise InputError(path, col, "a column of the match stage's particles.star (affinitomo match)")
        frames.append(frame[["afmParticleId", TEMPLATE, *ANGLES]])
    poses = concat_tables(frames, paths)  # ids unique across the files
    where = ", ".join(str(p) for p in paths)
    pos = rows_for_table(poses["afmParticleId"], table, where, "a pose", table_path)
    poses = poses.iloc[pos]
    angles = poses[ANGLES].to_numpy(float)
    if not np.isfinite(angles).all():
        raise InputError(where, "rlnAngleRot", "finite angles for every particle")
    return MatchPoses(poses[TEMPLATE].astype(str).to_numpy(), euler_to_matrix(*angles.T))


def combine_poses(assigned: np.ndarray, known: Sequence[str], model: np.ndarray | None,
                  match: MatchPoses | None, input_angles: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """(rotation (N, 3, 3) or None when neither source exists, source (N,) per row)."""
    from affinitomo.evaluate import best_global_rotation

    n = len(assigned)
    if model is None and match is None:
        return None, np.full(n, "input", dtype=object)
    assigned = np.asarray(assigned).astype(str)
    if model is not None:
        rotation, source = np.array(model, dtype=float), np.full(n, "model", dtype=object)
    else:
        rotation, source = euler_to_matrix(*np.asarray(input_angles, float).T), np.full(n, "input", dtype=object)
    if match is None:
        return rotation, source
    for name in known:
        rows = assigned == name
        matched = rows & (match.template == name)
        if not matched.any():
            continue
        if model is not None and (rows & ~matched).any():
            g = best_global_rotation(model[matched], match.rotation[matched])  # template frame ~ model @ g
            rotation[rows & ~matched] = model[rows & ~matched] @ g
        rotation[matched] = match.rotation[matched]
        source[matched] = "match"
    return rotation, source
