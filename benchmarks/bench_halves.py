"""Self-bias of the reassignment: full group references against cross-validated half references.

The cluster stage's reassignment matches each member of an unknown group against its group's
average, which contains that member, and the smaller the group the stronger that pull. This reads
a results folder of ``bench_shrec.py`` and takes the final unknown groups at their given poses,
then asks each member which group it prefers, twice:

- full: every group's masked average (``averaging.align.group_reference``), as the rounds do;
- halves: the cluster stage's ``align_reassign_halves`` choice (``averaging.align.cross_validated_choice``):
  each group cut into two random halves with one average per half; a member of half k is matched
  against the other half of its own group and against half k of every other group, so no reference
  contains it and every reference holds about half a group.

Prints, per group, its true classes and how many members prefer another group either way::

    python benchmarks/bench_halves.py --data /tmp/shrec_bench/snr0.03_split0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from affinitomo.averaging.align import (AlignOptions, cross_validated_choice, group_reference, match_references,
                                      split_halves)
from affinitomo.geometry import euler_to_matrix
from affinitomo.io.particles import ANGLES, read_particles


def preferences(stack: np.ndarray, rows: dict[int, np.ndarray], rotations: dict[int, np.ndarray], voxel: float,
                options: AlignOptions) -> dict[int, dict[str, dict[int, int]]]:
    """Per group: the members preferring each other group, with full references (``match_references``)
    and with the cluster stage's cross-validated halves (``cross_validated_choice`` of ``split_halves``)."""
    ids = sorted(rows)
    every = np.concatenate([rows[g] for g in ids])
    index = np.repeat(np.arange(len(ids)), [len(rows[g]) for g in ids])
    poses = np.zeros((len(every), len(ids), 3, 3))
    poses[np.arange(len(every)), index] = np.concatenate([rotations[g] for g in ids])
    full = [group_reference(stack, rows[g], rotations[g], voxel, options) for g in ids]
    by_full = match_references(stack, every, np.stack(full), voxel, options)[0].argmax(axis=1)
    by_halves = cross_validated_choice(stack, every, index, poses, split_halves(index, options.seed), full, voxel,
                                       options)
    return {g: {kind: {ids[j]: int(np.sum(best[index == i] == j)) for j in np.unique(best[index == i]) if j != i}
                for kind, best in (("full", by_full), ("halves", by_halves))}
            for i, g in enumerate(ids)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a bench_shrec.py folder snr<SNR>_split<S>")
    parser.add_argument("--variant", default="sim+semi+aug")
    a = parser.parse_args()
    results = a.data / a.variant / "results" / "particles.star"
    if not (a.data / "extract" / "subtomos.npy").exists() or not results.exists():
        print(f"skipped: no extracted stack or no {results} (run bench_shrec.py with --work first)")
        return
    stack = np.load(a.data / "extract" / "subtomos.npy", mmap_mode="r")
    table = read_particles(results)
    truth = read_particles(a.data / "data" / "truth.star").set_index("afmParticleId")
    names = truth.loc[table["afmParticleId"].to_numpy(), "afmClassName"].to_numpy().astype(str)
    unknown = table["afmClassName"].to_numpy() == "unknown"
    cluster = table["afmClusterId"].to_numpy()
    rows = {int(g): np.flatnonzero(unknown & (cluster == g)) for g in np.unique(cluster[unknown])}
    rotations = {g: euler_to_matrix(*table.loc[r, ANGLES].to_numpy(float).T) for g, r in rows.items()}
    found = preferences(stack, rows, rotations, float(table["afmPixelSize"].iloc[0]), AlignOptions())
    for g, prefs in found.items():
        truth_counts = dict(zip(*np.unique(names[rows[g]], return_counts=True)))
        print(json.dumps({"group": g, "members": len(rows[g]), "truth": {k: int(v) for k, v in truth_counts.items()},
                          "prefer_other_full": prefs["full"], "prefer_other_halves": prefs["halves"]}), flush=True)


if __name__ == "__main__":
    main()
