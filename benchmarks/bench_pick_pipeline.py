"""The whole pipeline from picks instead of true coordinates, on a simulated (SHREC-like) set.

1. Runs the workflow with ``--config`` (default ``workflow/configs/shrec.yaml``: tomograms simulated
   from the 12 SHREC maps, true coordinates) unless its results exist.
2. Picks every tomogram of that data set with the reference-free picker (``affinitomo pick``) and
   scores the picks: one-to-one matches within half a particle radius (per class, from
   ``simulation.json``), precision, recall per class.
3. Gives the picks what a lab would have: a pick matched to a labelled particle carries its label
   (the lab labelled that particle); every other pick is unlabelled. Ground truth for scoring: the
   matched particle's class, ``no_particle`` for a false pick.
4. Runs the same workflow (own-data mode, same settings) on the picks and prints known-class macro
   F1, ARI and NMI of both runs side by side, scored on the unlabelled particles.

    python benchmarks/bench_pick_pipeline.py [--config workflow/configs/shrec.yaml] [--diameter 150]
        [--cores 2] [--work /tmp/pick_pipeline]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from affinitomo.io.particles import read_particles, write_particles
from affinitomo.pick import pick_metrics
from affinitomo.pick.evaluate import match_picks

REPO = Path(__file__).resolve().parents[1]


def snakemake(configfile: Path, workdir: Path, cores: int) -> float:
    t0 = time.perf_counter()
    bin_dir = Path(sys.executable).parent
    subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                    "--configfile", str(configfile), "--cores", str(cores)], check=True, cwd=workdir,
                   env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(Path.home())})
    return time.perf_counter() - t0


def tolerances(data: Path, truth_classes: list[str], diameter_px: float) -> dict[str, float]:
    """Half a particle radius per class (simulation.json radius_voxels), else a quarter diameter."""
    info = data / "simulation.json"
    classes = json.loads(info.read_text()).get("classes", []) if info.is_file() else []
    radii = {c["name"]: c["radius_voxels"] for c in classes if "radius_voxels" in c}
    return {c: 0.5 * float(radii.get(c, diameter_px / 2)) for c in truth_classes}


def scores(results: Path) -> dict:
    m = json.loads((results / "metrics.json").read_text())
    return {"f1_macro": m.get("f1_macro"), "ari": m.get("ari"), "nmi": m.get("nmi")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "workflow" / "configs" / "shrec.yaml")
    parser.add_argument("--diameter", type=float, default=150.0, help="picker particle diameter in Å")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/pick_pipeline"))
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(args.config.read_text())
    config["demo"]["templates"] = str((REPO / config["demo"]["templates"]).resolve()) \
        if not Path(config["demo"]["templates"]).is_absolute() else config["demo"]["templates"]
    (work / "true.yaml").write_text(yaml.safe_dump(config))
    results_true = work / config["results"]
    data = work / config["demo"]["out"]
    wall_true = None if (results_true / "metrics.json").is_file() else snakemake(work / "true.yaml", work, args.cores)

    # Pick, score the picks.
    tomograms = sorted((data / "tomograms").glob("*.mrc"))
    polarity = "dark" if config["imaging"]["contrast"] == "dark" else "bright"
    t0 = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "affinitomo"), "pick", "--tomograms", *map(str, tomograms),
                    "--diameter", str(args.diameter), "--polarity", polarity, "--no-progress",
                    "--out", str(work / "picks.star")], check=True)
    pick_seconds = time.perf_counter() - t0
    picks = read_particles(work / "picks.star")
    truth = read_particles(data / "truth.star")
    labels = read_particles(data / "particles.star").set_index("afmParticleId")["afmClassName"]
    pixel = float(truth["afmPixelSize"].iloc[0])
    tol = tolerances(data, sorted(truth["afmClassName"].unique()), args.diameter / pixel)
    picked = pick_metrics(picks, truth, tol)
    matched = match_picks(picks, truth, tol)

    # Picks as a lab's particle table (labels of matched labelled particles) and their truth.
    hit = matched[matched["pick"] >= 0]
    label = np.full(len(picks), "", dtype=object)
    label[hit["pick"].to_numpy()] = labels.loc[hit["afmParticleId"]].fillna("").to_numpy()
    true_class = np.full(len(picks), "no_particle", dtype=object)
    true_class[hit["pick"].to_numpy()] = hit["afmClassName"].to_numpy()
    write_particles(work / "picks_labelled.star", picks.assign(afmClassName=label))
    write_particles(work / "picks_truth.star", picks.assign(afmClassName=true_class))
    own = dict(config, results="results_picks")
    own["data"] = {"particles": str(work / "picks_labelled.star"), "tomograms": [str(data / "tomograms")],
                   "pixel_size": None, "truth": str(work / "picks_truth.star")}
    own["similarity"] = dict(config["similarity"], templates=str(data / "templates"))
    (work / "picks.yaml").write_text(yaml.safe_dump(own))
    wall_picks = snakemake(work / "picks.yaml", work, args.cores)

    report = {
        "picking": {**{k: picked[k] for k in ("n_picks", "n_truth", "precision", "recall", "f1")},
                    "recall_per_class": picked["recall_per_class"], "seconds": round(pick_seconds, 1),
                    "diameter_A": args.diameter, "labelled_picks": int((label != "").sum())},
        "true_coordinates": {**scores(results_true), "wall_s": wall_true},
        "picks": {**scores(work / "results_picks"), "wall_s": round(wall_picks)},
    }
    print(json.dumps(report, indent=2))
    (work / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
