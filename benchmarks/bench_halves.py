"""Self-bias of the reassignment: full group references against cross-validated half references.

The cluster stage's reassignment matches each member of an unknown group against its group's
average, which contains that member, and the smaller the group the stronger that pull. This reads
a results folder of ``bench_shrec.py`` and takes the final unknown groups at their given poses,
then asks each member which group it prefers, twice:

- full: every group's masked average (``cluster.align.group_reference``), as the rounds do;
- halves: each group cut into two random halves with one average per half; a member of half k is
  matched against the other half of its own group and against half k of every other group, so no
  reference contains it and every reference holds about half a group.

Prints, per group, its true classes and how many members prefer another group either way::

    python benchmarks/bench_halves.py --data /tmp/shrec_bench/snr0.03_split0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from affinitomo.cluster.align import AlignOptions, group_reference, match_references
from affinitomo.geometry import euler_to_matrix
from affinitomo.io.particles import ANGLES, read_particles


def preferences(stack: np.ndarray, rows: dict[int, np.ndarray], rotations: dict[int, np.ndarray], voxel: float,
                options: AlignOptions, seed: int = 1) -> dict[int, dict[str, dict[int, int]]]:
    """Per group: the members preferring each other group, with full and with half references."""
    ids = sorted(rows)
    full = np.stack([group_reference(stack, rows[g], rotations[g], voxel, options) for g in ids])
    rng = np.random.default_rng(seed)
    halves = {}
    for g in ids:
        half = np.zeros(len(rows[g]), dtype=int)
        half[rng.permutation(len(rows[g]))[:len(rows[g]) // 2]] = 1
        halves[g] = (half, [group_reference(stack, rows[g][half == k], rotations[g][half == k], voxel, options)
                            for k in (0, 1)])
    out = {}
    for i, g in enumerate(ids):
        scores, _ = match_references(stack, rows[g], full, voxel, options)
        half, own = halves[g]
        best_half = np.zeros(len(rows[g]), dtype=int)
        for k in (0, 1):
            refs = np.stack([own[1 - k] if h == g else halves[h][1][k] for h in ids])
            s, _ = match_references(stack, rows[g][half == k], refs, voxel, options)
            best_half[half == k] = s.argmax(axis=1)
        out[g] = {kind: {ids[j]: int(np.sum(best == j)) for j in np.unique(best) if j != i}
                  for kind, best in (("full", scores.argmax(axis=1)), ("halves", best_half))}
    return out


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
