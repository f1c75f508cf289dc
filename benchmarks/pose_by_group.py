"""Pose error of one true class, per group it landed in.

An unseen molecule split over several unknown groups has each group aligned in its own frame, so
the per-class pose error of the cluster stage's ``metrics.json`` (one global rotation per class)
mixes frames. This scores each (assigned class / group) part of the class on its own, with the same
``affinitomo.evaluate.pose_error``. Reads a results folder and the truth table of
``bench_shrec.py``::

    python benchmarks/pose_by_group.py --results /tmp/shrec_bench/snr0.1_split2/sim+semi+aug/results \
        --truth /tmp/shrec_bench/snr0.1_split2/data/truth.star --classes 1s3x
"""

from __future__ import annotations

import argparse
from pathlib import Path

from affinitomo.cluster.inputs import truth_for
from affinitomo.evaluate import pose_error
from affinitomo.geometry import euler_to_matrix
from affinitomo.io.particles import ANGLES, read_particles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, required=True, help="the cluster stage's results folder")
    parser.add_argument("--truth", type=Path, required=True, help="truth.star with true classes and poses")
    parser.add_argument("--classes", nargs="+", required=True)
    a = parser.parse_args()
    table = read_particles(a.results / "particles.star")
    truth = truth_for(table, a.truth)
    pred = euler_to_matrix(*(table[c].to_numpy(float) for c in ANGLES))
    true = euler_to_matrix(*(truth[c].to_numpy(float) for c in ANGLES))
    names = truth["afmClassName"].to_numpy(str)
    parts = table["afmClassName"].astype(str).to_numpy() + "/" + table["afmClusterId"].astype(str).to_numpy()
    print("| class | assigned / group | particles | median pose error ° | within 30° |")
    print("|---|---|---|---|---|")
    for name in a.classes:
        sel = names == name
        if not sel.any():
            raise SystemExit(f"{a.truth}: no particle of class {name!r}")
        whole = pose_error(pred[sel], true[sel], names[sel])["per_class"][name]
        print(f"| {name} | all | {whole['n']} | {whole['median_deg']:.1f} | {whole['fraction_below_30deg']:.2f} |")
        for part, e in pose_error(pred[sel], true[sel], parts[sel])["per_class"].items():
            print(f"| {name} | {part} | {e['n']} | {e['median_deg']:.1f} | {e['fraction_below_30deg']:.2f} |")


if __name__ == "__main__":
    main()
