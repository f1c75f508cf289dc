"""Template matching on the embedded demo: accuracy, open set, pose error and time.

Simulates the demo (``affinitomo simulate demo``), extracts 32^3 boxes, matches them
against the known templates and scores only the particles that were not labelled:
known-class macro F1 (and per class), the fraction of each held-out class called
'unknown', and the median pose error of the asymmetric classes (raw, and after one
global rotation per class with ``affinitomo.evaluate.pose_error``). Usage::

    python benchmarks/bench_match.py [--work DIR] [--steps auto 30 15] [--pooled]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from affinitomo.evaluate import per_class_scores, pose_error
from affinitomo.geometry import angular_distance, euler_to_matrix
from affinitomo.io.particles import ANGLES, read_particles
from affinitomo.match import MatchOptions, match_particles
from affinitomo.search.stack import SearchOptions

ASYMMETRIC = ("l_short", "l_long", "globule")


def prepare(work: Path) -> tuple[Path, Path]:
    """Simulate the demo and extract it (once per work folder)."""
    demo, extract = work / "demo", work / "extract"
    cli = [sys.executable, "-c", "import sys; from affinitomo.cli import main; sys.exit(main())"]
    if not (demo / "truth.star").exists():
        subprocess.run([*cli, "simulate", "demo", "--out", str(demo)], check=True)
    if not (extract / "subtomos.npy").exists():
        subprocess.run([*cli, "extract", "--particles", str(demo / "particles.star"), "--tomograms",
                        str(demo / "tomograms"), "--box", "32", "--out", str(extract)], check=True)
    return demo, extract


def score(demo: Path, out: Path) -> dict:
    """Metrics of one match result against the demo's truth (unlabelled particles only)."""
    res = read_particles(out / "particles.star")
    ids = res["afmParticleId"].to_numpy()
    truth = read_particles(demo / "truth.star").set_index("afmParticleId").loc[ids]
    labelled = read_particles(demo / "particles.star").set_index("afmParticleId").loc[ids, "afmClassName"].to_numpy() != ""
    classes = pd.read_csv(demo / "classes.csv")
    known = classes.loc[classes["known"].astype(str) == "True", "name"].tolist()
    held_out = classes.loc[classes["known"].astype(str) != "True", "name"].tolist()
    t, a = truth["afmClassName"].to_numpy()[~labelled], res["afmClassName"].to_numpy()[~labelled]
    per = per_class_scores(t, a, known)
    pred = euler_to_matrix(*res[ANGLES].to_numpy().T)
    true = euler_to_matrix(*truth[ANGLES].to_numpy().T)
    all_truth, all_assigned = truth["afmClassName"].to_numpy(), res["afmClassName"].to_numpy()
    sel = np.isin(all_truth, ASYMMETRIC) & (all_truth == all_assigned)
    aligned = pose_error(pred[sel], true[sel], all_truth[sel])["per_class"]
    return {
        "f1_macro_known": float(np.mean([per[c]["f1"] for c in known])),
        "f1_per_class": {c: round(per[c]["f1"], 3) for c in known},
        "held_out_unknown": {c: float(np.mean(a[t == c] == "unknown")) for c in held_out},
        "known_called_unknown": float(np.mean(a[np.isin(t, known)] == "unknown")),
        "pose_median_deg_raw": {c: float(np.median(angular_distance(pred[sel & (all_truth == c)], true[sel & (all_truth == c)])))
                                for c in ASYMMETRIC},
        "pose_median_deg_aligned": {c: round(v["median_deg"], 2) for c, v in aligned.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--steps", nargs="+", default=["auto"], help="angular steps to compare (degrees or auto)")
    parser.add_argument("--pooled", action="store_true", help="one unknown threshold for all classes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        demo, extract = prepare(work)
        for step in args.steps:
            out = work / f"match_{step}"
            opts = MatchOptions(SearchOptions(angular_step=None if step == "auto" else float(step)),
                                per_class_threshold=not args.pooled)
            t0 = time.perf_counter()
            result = match_particles(extract / "subtomos.npy", extract / "particles.star", demo / "templates", out, opts,
                                     progress=False)
            row = {"step": step, "seconds": round(time.perf_counter() - t0, 1), "n_particles": len(result.table),
                   "n_templates": len(result.classes), **score(demo, out)}
            print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
