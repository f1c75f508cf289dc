"""Does the affinity prior work? The same training with gamma > 0 and with gamma = 0 (a beta-VAE).

On the embedded demo (``affinitomo simulate demo``, ``extract`` 32^3 boxes, ``similarity`` from
the known templates as the workflow does: ncc at 30 Å), trains twice with every option equal but
``gamma``, on the labelled particles, encodes every particle and prints for each run:

- ``prior_spearman``: Spearman's rho between the similarity matrix and the cosine similarity of
  class-mean latents (:func:`affinitomo.cluster.pipeline.latent_prior`, pairs of known classes),
  over the particles that were *not* labelled (true classes), and over all particles (the
  basis ``metrics.json`` uses);
- ``f1_macro``: known-class macro F1 on the unlabelled particles of the open-set classifier the
  ``cluster`` stage fits on the labelled latents (:func:`affinitomo.cluster.pipeline.classify`,
  default options), and ``f1_macro_closed`` with the open set off.

Figures, not a timed test. Fewer epochs than the workflow default (``--epochs``, default 20 = the
default) keep it to a few minutes on two cores. Usage::

    python benchmarks/bench_prior.py [--epochs 20] [--gamma 1.0] [--seeds 0] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from affinitomo.cluster.classify import ClassifyOptions
from affinitomo.cluster.inputs import latent_prior
from affinitomo.cluster.pipeline import classify
from affinitomo.encode import encode_stack
from affinitomo.evaluate import per_class_scores
from affinitomo.io.particles import read_particles
from affinitomo.io.similarity import read_similarity
from affinitomo.io.stacks import SubtomoStack
from affinitomo.model.train_config import config_from_dict
from affinitomo.train.labels import load_training_data
from affinitomo.train.loop import Trainer

CLI = [sys.executable, "-c", "import sys; from affinitomo.cli import main; sys.exit(main())"]


def prepare(work: Path, seed: int) -> tuple[Path, Path, Path]:
    """Simulate the demo, extract it and compute the matrix (once per work folder)."""
    demo, extract, matrix = work / "demo", work / "extract", work / "matrix.csv"
    if not (demo / "truth.star").exists():
        subprocess.run([*CLI, "simulate", "demo", "--out", str(demo), "--seed", str(seed)], check=True)
    if not (extract / "subtomos.npy").exists():
        subprocess.run([*CLI, "extract", "--particles", str(demo / "particles.star"), "--tomograms",
                        str(demo / "tomograms"), "--box", "32", "--out", str(extract)], check=True)
    if not matrix.exists():
        subprocess.run([*CLI, "similarity", "--templates", str(demo / "templates"), "--classes-from",
                        str(extract / "particles.star"), "--score", "ncc", "--resolution", "30",
                        "--out", str(matrix)], check=True)
    return demo, extract, matrix


def f1_macro(truth: np.ndarray, assigned: np.ndarray, known: list[str]) -> float:
    """Mean F1 over the known classes present in ``truth`` (the metrics.json definition)."""
    scores = per_class_scores(truth, assigned, known)
    present = [c for c in known if scores[c]["support"] > 0]
    return float(np.mean([scores[c]["f1"] for c in present]))


def run(extract: Path, demo: Path, matrix: Path, out: Path, options: dict) -> dict:
    """Train with ``options``, encode every particle, score prior and classification."""
    data = load_training_data(SubtomoStack(extract / "subtomos.npy"), extract / "particles.star", matrix)
    cfg = config_from_dict(options)
    trainer = Trainer(data, out, cfg, "cpu")
    start = time.perf_counter()
    history = trainer.fit(progress=False)
    seconds = time.perf_counter() - start
    mu = encode_stack(trainer.model.eval(), data.stack, cfg.normalise, progress=False)["mu"]

    table = read_particles(extract / "particles.star")
    truth = read_particles(demo / "truth.star").set_index("afmParticleId")
    true_names = truth.loc[table["afmParticleId"].to_numpy(), "afmClassName"].to_numpy().astype(str)
    labels = table["afmClassName"].fillna("").astype(str).str.strip().to_numpy()
    labelled = labels != ""
    names, values = read_similarity(matrix, data.classes)
    known = list(data.classes)
    held = ~labelled
    out_row = {
        "gamma": cfg.gamma.max,
        "prior_spearman_unlabelled": latent_prior(mu[held], true_names[held], (names, values), "")["rho"],
        "prior_spearman_all": latent_prior(mu, true_names, (names, values), "")["rho"],
    }
    for key, open_set in (("f1_macro", True), ("f1_macro_closed", False)):
        cl = classify(mu, labels, labelled, known, ClassifyOptions(open_set=open_set), None, extract)
        out_row[key] = f1_macro(true_names[held], cl.assigned[held].astype(str), known)
    out_row |= {"final_train_recon": history[-1]["train_recon"], "final_train_affinity": history[-1]["train_affinity"],
                "train_s": round(seconds, 1)}
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out_row.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--gamma", type=float, default=1.0, help="the affinity weight of the prior run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (same data)")
    parser.add_argument("--demo-seed", type=int, default=0)
    parser.add_argument("--options", default="{}", help="extra training options (JSON), the same for both runs")
    parser.add_argument("--work", type=Path, help="keep the files here (default: a temporary folder)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        demo, extract, matrix = prepare(work, args.demo_seed)
        prepared_s = time.perf_counter() - t0
        for seed in args.seeds:
            for gamma in (args.gamma, 0.0):
                options = {"epochs": args.epochs, "seed": seed, "checkpoint_every": 1000,
                           **json.loads(args.options), "gamma": gamma}
                rows.append({"seed": seed} | run(extract, demo, matrix, work / f"train_g{gamma}_s{seed}", options))
    print(pd.DataFrame(rows).to_string(index=False))
    print(json.dumps({"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "runs": rows,
                      "prepare_s": round(prepared_s, 1), "total_s": round(time.perf_counter() - t0, 1),
                      "load_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
