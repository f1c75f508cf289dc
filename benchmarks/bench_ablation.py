"""Ablation of the pipeline on the small SHREC-like set: what templates, latents, matrix and affinity each carry.

The set of benchmarks/bench_realism.py (12 maps of ``templates/maps_10A`` at 10 Å, tilt series ±60°/3°, CTF at
3 µm, WBP, dark protein, SNR 0.1, 2 tomograms of 100 x 256 x 256 with 8 particles per class each, half of the
known classes' particles labelled, 32^3 boxes inverted). ``--split`` picks the unseen (held-out) classes:
0 = bench_realism's (4cr2 5mrc), 1-3 = bench_shrec's splits 0-2 (4 classes each). ``--tier``:

- ``exact``: the templates are the maps the tomograms were simulated from;
- ``realistic``: every realism knob of bench_realism's ``all`` variant (deformation, occupancy, partners,
  missing subunits, defocus spread, dose-symmetric damage) and templates from the atomic models (``pdb``,
  or B-factor low-passed maps where an unseen class is one without a model);
- ``template-free``: the pipeline gets no templates, and no simulated particles; only the labels and
  ``similarity.matrix`` (the matrix the similarity stage computes from the known classes' maps, standing
  in for a given CSV). As in the workflow's template-free mode, each known class's reference is built
  from its labelled particles alone (``affinitomo references``: reference-free alignment) and the match
  stage matches every particle against those references, without a CTF (they carry it), and by default
  groups on the references' scores alone (``latents: false``: the ``scores`` row);
- ``template-free-realistic``: the same on the ``realistic`` tier's data (class references from the
  labels in place of the PDB templates).

Rows (the stages' own library functions and CLIs, as benchmarks/bench_shrec.py calls them; in the
template-free tier "template" means the class references). In every row with scores, a particle the
open set keeps among the known classes takes the class of its best-scoring template (``known_from:
auto``); ``--cluster-options '{"known_from": "classifier"}'`` gives the kNN classifier's class instead:

- ``tm``: template matching alone (best template, 'unknown' below the 5th percentile of labelled scores);
- ``tm+classifier``: template scores only, through the cluster stage's classifier and clustering alone;
- ``scores``: template scores only, through the full cluster stage (regrouping, alignment, competition,
  refresh) in place of the latents (``latents: false``; the workflow's default in template-free mode);
- ``latents``: the latents only;
- ``latents+scores``: latents + template scores (the workflow's default with templates);
- ``gamma0``, ``identity``, ``shuffled``: the default with gamma 0 (a beta-VAE), an identity matrix, the
  matrix with its classes permuted (same values, wrong pairs);
- ``pca``: the first ``latent_dims`` principal components of the (z-scored) subtomograms in place of the
  latents (+ scores).

Training: the pipeline's defaults (``--train-options`` merged over them), with ``--simulated-per-class``
simulated particles per known class where there are templates. Columns, on the particles that were not
labelled: known-class macro F1; unseen classes whose best group is > 80 % pure and holds > 50 % of them;
ARI of the groups; median pose error of the asymmetric classes (median of the per-class medians); wall
time of the row (training, encoding, UMAP, cluster stage; template matching counted once, in ``tm``;
``latents+scores`` and ``latents`` share one model, latents and UMAP, whose time the first of them run
counts; in the template-free tier, building the references counts in neither). ``--seed`` seeds the
simulated data set, the references and the training alike.
Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_ablation.py --tier template-free --split 0 --work /tmp/abl --json out.json

``--work`` keeps each step's output (a step is skipped when it completed before). Skips (exit 0) with a
message when the reference data are absent (``$AFFINITOMO_SHARED_DATA``, default ``<repo>/../shared/data``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_realism import DEFOCUS_UM, HELD_OUT, VARIANTS as REALISM_VARIANTS, build_set
from bench_shrec import ASYMMETRIC, SPLITS, load, match_dir, pure_majority, run_tm, run_tm_classifier, shared_templates, step
from bench_shrec import imaging_flags, summarise, truth_and_labels

#: Unseen classes per ``--split``: bench_realism's, then bench_shrec's.
ABLATION_SPLITS = (HELD_OUT, *SPLITS)
TIERS = ("exact", "realistic", "template-free", "template-free-realistic")
#: tiers given no templates, and the tier whose data they are
DATA_OF = {"template-free": "exact", "template-free-realistic": "realistic"}
ROWS = ("tm", "tm+classifier", "scores", "latents", "latents+scores", "gamma0", "identity", "shuffled", "pca")
#: Maps with no atomic model under templates/pdb.
NO_MODEL = ("4cr2", "5mrc")


def realism_spec(tier: str, unseen: tuple[str, ...]) -> dict[str, Any]:
    """The `simulate templates` knobs of a tier (bench_realism's variant spec)."""
    if DATA_OF.get(tier, tier) != "realistic":
        return {}
    spec = dict(REALISM_VARIANTS["all"])
    if not set(NO_MODEL) <= set(unseen):
        spec["template_source"] = "lowpass-bfactor"
    return spec


def prepare(work: Path, maps: Path, a: argparse.Namespace) -> dict[str, Path]:
    """Simulate (bench_realism's set), extract, similarity and simulated particles, each once."""
    unseen = ABLATION_SPLITS[a.split]
    # template-free data are the exact (or realistic) tier's: only what the pipeline is given differs
    d = work / f"{DATA_OF.get(a.tier, a.tier)}_split{a.split}_seed{a.seed}"
    p = {"root": d, "data": d / "data", "extract": d / "extract", "matrix": d / "similarity" / "matrix.csv",
         "simulated": d / f"simulated{a.simulated_per_class}", "tier": work / f"{a.tier}_split{a.split}_seed{a.seed}"}
    build_set(realism_spec(a.tier, unseen), p["data"], p["extract"], maps, maps.parent / "pdb", a, unseen)
    logs = d / "logs"
    step(p["matrix"], ["similarity", "--templates", p["data"] / "templates", "--classes-from",
                       p["extract"] / "particles.star", "--resolution", "30", "--out", p["matrix"]],
         logs / "similarity.log")
    if a.tier not in DATA_OF:
        step(p["simulated"] / "subtomos.npy",
             ["simulate", "particles", "--templates", p["data"] / "templates", "--out", p["simulated"],
              "--per-class", a.simulated_per_class, "--box", a.box, "--snr-from", p["extract"] / "subtomos.npy",
              *imaging_flags(tm_args(a)), "--seed", a.seed, "--invert", "--no-progress"],
             logs / "simulate_particles.log")
    if a.tier in DATA_OF:  # the known classes' references, from their labelled particles alone
        p["references"] = p["tier"] / "references"
        p["match"] = p["tier"] / "tm_references"
        step(p["references"] / "references.json",
             ["references", "--stack", p["extract"] / "subtomos.npy", "--particles", p["extract"] / "particles.star",
              "--out", p["references"], "--options", json.dumps({"align_wedge": [-60, 60], "seed": a.seed}),
              "--device", "cpu"], logs / f"references_seed{a.seed}.log")
    return p


def write_matrix(p: dict[str, Path], kind: str, seed: int) -> Path:
    """The similarity matrix of a row: as computed, identity, or with its classes permuted."""
    from affinitomo.io.similarity import read_similarity

    if kind == "matrix":
        return p["matrix"]
    names, m = read_similarity(p["matrix"])
    if kind == "identity":
        m = np.eye(len(names))
    else:  # a permutation that moves every class (a cyclic shift of a random order)
        order = np.random.default_rng(seed).permutation(len(names))
        perm = np.empty(len(names), int)
        perm[order] = np.roll(order, 1)
        m = m[np.ix_(perm, perm)]
    out = p["tier"] / f"matrix_{kind}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(names)] + [",".join(f"{v:.6f}" for v in row) for row in m]
    out.write_text("\n".join(lines) + "\n")
    return out


def pca_latents(p: dict[str, Path], out: Path, dims: int) -> None:
    """latents.npz holding the first ``dims`` principal components of the z-scored subtomograms."""
    from affinitomo.io.latents import Latents, write_latents
    from affinitomo.io.particles import read_particles

    stack = np.load(p["extract"] / "subtomos.npy", mmap_mode="r")
    x = np.asarray(stack, np.float64).reshape(len(stack), -1)
    x = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-8)
    x -= x.mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    mu = u[:, :dims] * s[:dims]
    ids = read_particles(p["extract"] / "particles.star")["afmParticleId"].to_numpy()
    write_latents(out, Latents(ids, mu, np.zeros_like(mu), np.zeros((len(ids), 1))))


def score_latents(p: dict[str, Path], out: Path) -> None:
    """latents.npz holding each particle's template scores (scores.csv of :func:`match_dir`) as its latents."""
    from affinitomo.io.latents import Latents, write_latents
    from affinitomo.io.particles import read_particles
    from affinitomo.io.scores import read_scores

    table = read_particles(p["extract"] / "particles.star")
    _, scores = read_scores(match_dir(p) / "scores.csv", table)
    ids = table["afmParticleId"].to_numpy()
    write_latents(out, Latents(ids, scores, np.zeros_like(scores), np.zeros((len(ids), 1))))


def run_pipeline(p: dict[str, Path], row: str, a: argparse.Namespace) -> dict[str, Any]:
    """Train (unless pca or scores), encode, embed, cluster and score one row."""
    from affinitomo.cluster.pipeline import StageOptions, run_cluster
    from affinitomo.model.train_config import config_from_dict

    # latents and latents+scores share one model, its latents and UMAP
    out = p["tier"] / ("latents" if row == "latents+scores" else row)
    options = {**json.loads(a.train_options), **({"gamma": 0.0} if row == "gamma0" else {})}
    matrix = write_matrix(p, {"identity": "identity", "shuffled": "shuffled"}.get(row, "matrix"), a.seed)
    latents, embed, logs = out / "latents.npz", out / "embed", out / "logs"
    t0 = time.perf_counter()
    if row == "pca":
        if not latents.exists():
            pca_latents(p, latents, config_from_dict(options).model.latent_dims)
    elif row == "scores":
        score_latents(p, latents)
    else:
        sources = ["--stack", p["extract"] / "subtomos.npy", "--particles", p["extract"] / "particles.star"]
        if a.tier not in DATA_OF:
            sources += ["--stack", p["simulated"] / "subtomos.npy", "--particles", p["simulated"] / "particles.star"]
        step(out / "train" / "model.pt", ["train", *sources, "--matrix", matrix, "--out", out / "train",
                                          "--device", "cpu", "--options", json.dumps(options), "--no-progress"],
             logs / "train.log")
        step(latents, ["encode", "--checkpoint", out / "train" / "model.pt", "--stack", p["extract"] / "subtomos.npy",
                       "--particles", p["extract"] / "particles.star", "--out", latents, "--device", "cpu"],
             logs / "encode.log")
    step(embed / "embedding.csv", ["embed", "--latents", latents, "--particles", p["extract"] / "particles.star",
                                   "--out", embed], logs / "embed.log")
    scores = row != "latents"  # "scores": the scores alone (latents: false); its "latents" are them too (UMAP)
    tm = match_dir(p)
    summary = run_cluster(latents, embed / "embedding.csv", p["extract"] / "particles.star",
                          out / ("results_scores" if scores else "results"),
                          truth_path=p["data"] / "truth.star", matrix_path=matrix,
                          options=StageOptions.from_dict({**stage_options(a), "latents": row != "scores"},
                                                         "options"),
                          match_scores=tm / "scores.csv" if scores else None,
                          match_poses=tm / "particles.star" if scores else None,
                          stack_path=p["extract"] / "subtomos.npy")
    _, _, known, unknown = truth_and_labels(p, p["extract"] / "particles.star")
    return {**summarise(summary["metrics"], known, unknown), "seconds": round(time.perf_counter() - t0, 1)}


def stage_options(a: argparse.Namespace) -> dict[str, Any]:
    """The cluster stage's options as the workflow sets them (the tilt range's wedge; ``known_from: auto``, so
    the best-scoring template or class reference gives the class); ``--cluster-options`` over them."""
    values = {"align_wedge": [-60, 60]}
    return {**values, **json.loads(a.cluster_options)}


def tm_args(a: argparse.Namespace) -> argparse.Namespace:
    """The imaging arguments bench_shrec's template-matching rows and flags read (bench_realism's imaging)."""
    return argparse.Namespace(defocus_um=DEFOCUS_UM, tilt_range=[-60.0, 60.0], cluster_options="{}")


def run_row(p: dict[str, Path], row: str, a: argparse.Namespace) -> dict[str, Any]:
    if row in ("tm", "tm+classifier"):
        t0 = time.perf_counter()
        r = (run_tm if row == "tm" else run_tm_classifier)(p, match_dir(p), tm_args(a))
        r["seconds"] = round(time.perf_counter() - t0, 1) if row == "tm+classifier" else r["seconds"]
        return r
    if row != "latents":
        run_tm(p, match_dir(p), tm_args(a))  # the scores and poses the cluster stage reads
    return run_pipeline(p, row, a)


def fmt(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


HEADER = ("| tier | split | row | F1 known | unseen in own group (>0.8 pure, majority) | ARI groups | "
          "pose median ° (asym.) | s |\n|---|---|---|---|---|---|---|---|")


def table_row(r: dict[str, Any]) -> str:
    fates = list(r["unknown"].values())
    own = f"{sum(pure_majority(v) for v in fates)} of {len(fates)}"
    pose = [v for c, v in r["pose_median_deg"].items() if c in ASYMMETRIC and v is not None]
    return (f"| {r['tier']} | {r['split']} | {r['row']} | {fmt(r['f1_macro_known'])} | {own} | "
            f"{fmt(r['ari_groups'])} | {fmt(float(np.median(pose)) if pose else None, 1)} | {fmt(r['seconds'], 0)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=TIERS, default="exact")
    parser.add_argument("--split", type=int, default=0, choices=range(len(ABLATION_SPLITS)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--work", type=Path, default=None, help="work folder, reused between runs (default: temporary)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--tomograms", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=8, help="particles per class per tomogram")
    parser.add_argument("--shape", type=int, nargs=3, default=[100, 256, 256], metavar=("Z", "Y", "X"))
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--simulated-per-class", type=int, default=100,
                        help="simulated training particles per known class (template tiers)")
    parser.add_argument("--train-options", default="{}", help="JSON training options over the defaults")
    parser.add_argument("--cluster-options", default="{}", help="JSON cluster options over the workflow's")
    parser.add_argument("--tag", default="", help="suffix of the rows' folders (e.g. other train options)")
    a = parser.parse_args()
    maps = shared_templates()
    if maps is None or not (maps.parent / "pdb").is_dir():
        print("bench_ablation: skipped: the SHREC maps and models (templates/maps_10A, templates/pdb) are not under "
              "$AFFINITOMO_SHARED_DATA (default <repo>/../shared/data)")
        return 0
    rows = list(a.rows)
    print(f"<!-- tier {a.tier}, split {a.split} (unseen {' '.join(ABLATION_SPLITS[a.split])}), seed {a.seed}, "
          f"train options {a.train_options}; load before {load()} -->", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or Path(tmp)
        t0 = time.perf_counter()
        p = prepare(work, maps, a)
        print(f"<!-- data ready ({time.perf_counter() - t0:.0f} s), load {load()} -->", flush=True)
        if a.tag:
            p["tier"] = p["tier"].with_name(p["tier"].name + a.tag)
        print(HEADER, flush=True)
        for row in rows:
            r = run_row(p, row, a)
            r.update(tier=a.tier, split=a.split, seed=a.seed, row=row, load=load())
            results.append(r)
            print(table_row(r), flush=True)
    for r in results:
        print(f"<!-- {r['row']}: per-class F1 {json.dumps({c: round(v, 2) for c, v in r['f1'].items()})}; "
              f"pose {json.dumps(r['pose_median_deg'])}; load {r['load']} -->")
    if a.json:
        a.json.write_text(json.dumps({"rows": results, "args": {k: str(v) for k, v in vars(a).items()}}, indent=1,
                                     default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
