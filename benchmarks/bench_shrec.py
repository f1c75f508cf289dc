"""SHREC-like accuracy benchmark: template matching and the pipeline's training-data choices, open set.

Simulates a SHREC-like set from the 12 template maps (``affinitomo simulate templates``,
imaging of ``workflow/configs/shrec.yaml``), 8 classes known (templates, 60 % of their
particles labelled) and 4 unknown (no template, no label), and runs each variant end to end
with the package's stages (``extract``, ``similarity``, ``simulate particles``, ``match``,
``train``, ``encode``, ``embed``, ``cluster``). Only particles that were not labelled are scored.

Variants (everything else equal):

- ``tm``: template matching against the 8 known templates (``affinitomo match``), its own rule:
  best template, 'unknown' below the 5th percentile of the labelled particles' scores;
- ``tm+classifier``: the template scores alone through the pipeline's open-set classifier and
  clustering (what the latents add is the difference to the pipeline rows);
- ``sim``: trained on the labelled particles + particles simulated from the templates with the
  tomograms' imaging, no augmentation;
- ``sim+semi``: plus every extracted particle for reconstruction + KL (affinity on labelled pairs);
- ``sim+semi+aug``: plus the augmentation that respects the missing wedge (the training default);
- ``gamma0``: ``sim+semi+aug`` with gamma = 0 (a beta-VAE).

Pipeline variants classify and cluster the latents together with the template scores (the
workflow default, ``match.enabled``); ``--features latent`` uses the latents alone.

Splits rotate the 4 unknown classes so that each of the 12 is unknown once (split 0 = shrec.yaml).
Columns: known-class macro F1 and per-class F1; per unknown class the fraction called unknown and the
purity / completeness of its best group (the pipeline's output: known classes + one group per unknown
cluster; template matching: one 'unknown' group); ARI / NMI of the clusters and of the groups;
median pose error per asymmetric class (rotation decoder); training time. Usage::

    python benchmarks/bench_shrec.py --snr 0.1 --split 0 --work /tmp/shrec_bench --json out.json
    python benchmarks/bench_shrec.py --snr 0.1 --split 0 1 2 --variants tm sim+semi+aug gamma0
    python benchmarks/bench_shrec.py --snr 0.05 --split 2 --tilt-range -50 50 --defocus-um 4 --variants tm sim+semi+aug

``--tilt-range`` and ``--defocus-um`` image the tomograms as no default run does (data the defaults
were not chosen on); the tilt range reaches the match stage (``--wedge``) and the alignment
(``align_wedge``), as the workflow passes ``imaging``.

``--work`` keeps the simulated data, trained models and latents between runs (each step is skipped
when its output exists), so ``--cluster-options`` can be compared on the same latents cheaply.
Skips (exit 0) with a message when the reference maps are absent
(``$AFFINITOMO_SHARED_DATA``, default ``<repo>/../shared/data``).
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
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ALL_CLASSES = ("1s3x", "3qm1", "3gl1", "3h84", "2cg9", "3d2f", "1u6g", "3cf3", "1bxn", "1qvr", "4cr2", "5mrc")
#: Unknown classes per split; together they hold out each class once. Split 0 is shrec.yaml's.
SPLITS = (("1bxn", "1u6g", "2cg9", "3cf3"), ("1qvr", "3d2f", "3qm1", "5mrc"), ("1s3x", "3gl1", "3h84", "4cr2"))
#: Classes whose map has no point-group symmetry (single chain or hetero-complex), for pose error.
ASYMMETRIC = ("1s3x", "1u6g", "4cr2", "5mrc")
#: Training options of each pipeline variant (merged over --train-options).
PIPELINE = {
    "sim": {"semi_supervised": False, "augmentation": "none"},
    "sim+semi": {"semi_supervised": True, "augmentation": "none"},
    "sim+semi+aug": {"semi_supervised": True, "augmentation": "wedge"},
    "gamma0": {"semi_supervised": True, "augmentation": "wedge", "gamma": 0.0},
}
VARIANTS = ("tm", "tm+classifier", *PIPELINE)
#: Imaging of workflow/configs/shrec.yaml (tilt range, degrees; defocus, µm); ``--tilt-range`` and
#: ``--defocus-um`` change it, for data imaged as no run before was (the work folder then says so).
TILTS = (-60.0, 60.0)
DEFOCUS_UM = 3.0


def ctf_flags(a: argparse.Namespace) -> list[str]:
    """The tomograms' CTF, as the flags of `affinitomo simulate` and `affinitomo match`."""
    return ["--defocus-um", f"{a.defocus_um:g}", "--voltage-kv", "300", "--cs-mm", "2.7", "--amplitude-contrast", "0.07"]


def imaging_flags(a: argparse.Namespace) -> list[str]:
    """The tomograms' imaging (tilt series, CTF, WBP), as `affinitomo simulate` flags."""
    return ["--imaging", "tiltseries", "--tilt-min", f"{a.tilt_range[0]:g}", "--tilt-max", f"{a.tilt_range[1]:g}",
            "--tilt-step", "3", "--contrast", "dark", *ctf_flags(a)]


def imaging_tag(a: argparse.Namespace) -> str:
    """Suffix of the work folder for imaging other than shrec.yaml's ('' for it, so earlier folders are reused)."""
    tag = "" if tuple(a.tilt_range) == TILTS else f"_tilt{a.tilt_range[0]:g}_{a.tilt_range[1]:g}"
    return tag + ("" if a.defocus_um == DEFOCUS_UM else f"_df{a.defocus_um:g}")
CLI = [sys.executable, "-m", "affinitomo"]


def shared_templates() -> Path | None:
    """The 10 Å SHREC maps, or None when the shared data folder is absent."""
    root = Path(os.environ.get("AFFINITOMO_SHARED_DATA", REPO.parent / "shared" / "data"))
    maps = root / "templates" / "maps_10A"
    return maps if maps.is_dir() and all((maps / f"{c}.mrc").is_file() for c in ALL_CLASSES) else None


def load() -> str:
    """The 1/5/15-minute load average."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def step(out: Path, args: list[str], log: Path) -> float:
    """Run one CLI verb unless it completed before; returns its wall time (0 when skipped).

    Completion is a ``<out>.done`` marker written after the verb succeeds, not ``out`` itself:
    training writes ``model.pt`` every few epochs, so a killed run would otherwise be reused.
    """
    done = out.with_name(out.name + ".done")
    if out.exists() and done.exists():
        return 0.0
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run([*CLI, *map(str, args)], stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"affinitomo {' '.join(map(str, args[:2]))} failed; see {log}")
    done.touch()
    return time.perf_counter() - t0


def prepare(data_root: Path, maps: Path, snr: float, split: int, a: argparse.Namespace) -> dict[str, Path]:
    """Simulate, extract, similarity and simulated training particles for one (SNR, split), once."""
    d = data_root / f"snr{snr:g}_split{split}{imaging_tag(a)}"
    p = {"root": d, "data": d / "data", "extract": d / "extract", "matrix": d / "similarity" / "matrix.csv",
         # Keyed by the count, so that a run asking for more simulated particles does not reuse fewer.
         "simulated": d / f"simulated{a.simulated_per_class}"}
    logs = d / "logs"
    step(p["data"] / "truth.star",
         ["simulate", "templates", "--templates", maps, "--out", p["data"], "--seed", a.seed,
          "--n-tomograms", a.tomograms, "--per-class", a.per_class, "--shape", *a.shape,
          "--held-out", *SPLITS[split], "--labelled-fraction", a.labelled_fraction, "--snr", snr,
          *imaging_flags(a), "--no-progress"], logs / "simulate.log")
    step(p["extract"] / "subtomos.npy",
         ["extract", "--particles", p["data"] / "particles.star", "--tomograms", p["data"] / "tomograms",
          "--box", a.box, "--invert", "--out", p["extract"]], logs / "extract.log")
    step(p["matrix"], ["similarity", "--templates", p["data"] / "templates", "--classes-from",
                       p["extract"] / "particles.star", "--resolution", "30", "--out", p["matrix"]],
         logs / "similarity.log")
    step(p["simulated"] / "subtomos.npy",
         ["simulate", "particles", "--templates", p["data"] / "templates", "--out", p["simulated"],
          "--per-class", a.simulated_per_class, "--box", a.box, "--snr-from", p["extract"] / "subtomos.npy",
          *imaging_flags(a), "--seed", a.seed, "--invert", "--no-progress"], logs / "simulate_particles.log")
    return p


def truth_and_labels(p: dict[str, Path], table_path: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """True class per row of ``table_path``, whether it was labelled, known and unknown classes."""
    import pandas as pd

    from affinitomo.cluster.inputs import truth_for
    from affinitomo.io.particles import read_particles
    from affinitomo.labels import labelled_mask

    table = read_particles(table_path)
    truth = truth_for(table, p["data"] / "truth.star")["afmClassName"].to_numpy().astype(str)
    given = read_particles(p["extract"] / "particles.star").set_index("afmParticleId")
    labelled = labelled_mask(given.loc[table["afmParticleId"].to_numpy()].reset_index())
    classes = pd.read_csv(p["data"] / "classes.csv")
    known_flag = classes["known"].astype(str).isin(["True", "1", "true"])
    return truth, labelled, classes.loc[known_flag, "name"].tolist(), classes.loc[~known_flag, "name"].tolist()


def pure_majority(fate: dict[str, Any]) -> bool:
    """The issue's target for an unseen class: its best group is > 80 % pure and holds > 50 % of it."""
    return (fate["purity"] or 0) > 0.8 and (fate["completeness"] or 0) > 0.5


def summarise(metrics: dict[str, Any], known: list[str], unknown: list[str]) -> dict[str, Any]:
    """The table's columns from a metrics dict of :func:`affinitomo.evaluate.evaluate`."""
    fates = metrics["fates"]
    row: dict[str, Any] = {
        "f1_macro_known": metrics["f1_macro"],
        "f1": {c: metrics["per_class"][c]["f1"] for c in known},
        "known_called_unknown": float(np.mean([fates[c]["assigned"].get("unknown", 0.0) for c in known])),
        "unknown": {c: {"called_unknown": fates[c]["assigned"].get("unknown", 0.0),
                        "purity": fates[c].get("group_purity"), "completeness": fates[c].get("group_completeness"),
                        "cluster_purity": fates[c].get("purity"),
                        "cluster_completeness": fates[c].get("completeness")} for c in unknown},
        "ari_clusters": metrics["clusters"]["ari"], "nmi_clusters": metrics["clusters"]["nmi"],
        "ari_groups": metrics["ari"], "nmi_groups": metrics["nmi"],
    }
    pose = (metrics.get("pose_error") or {}).get("per_class", {})
    row["pose_median_deg"] = {c: pose[c]["median_deg"] for c in ASYMMETRIC if c in pose}
    row["targets"] = {
        "unknown_90pct": all(v["called_unknown"] >= 0.9 for v in row["unknown"].values()),
        "unknown_pure_majority": all(pure_majority(v) for v in row["unknown"].values()),
    }
    return row


def matching(p: dict[str, Path], a: argparse.Namespace) -> tuple[Path, float]:
    """Template matching of one (SNR, split), once, with the tomograms' CTF on the templates, as the
    workflow does: (its folder, seconds if it ran now). Folder ``tm_ctf``: a folder ``tm`` holds
    matching without the CTF on the templates and is not reused. With ``p["references"]`` (class
    references from the labelled particles, ``affinitomo references``) those are the templates, without
    a CTF, and the folder is ``p["match"]``."""
    out = match_dir(p)
    references = p.get("references")  # class references from the labelled particles carry the CTF already
    seconds = step(out / "scores.csv", ["match", "--stack", p["extract"] / "subtomos.npy", "--particles",
                                        p["extract"] / "particles.star", "--templates",
                                        references or p["data"] / "templates", "--out", out,
                                        *([] if references else ctf_flags(a)), "--wedge",
                                        *(f"{t:g}" for t in a.tilt_range), "--no-progress"], out / "match.log")
    return out, seconds


def match_dir(p: dict[str, Path]) -> Path:
    """The folder of :func:`matching`: ``p["match"]`` where given (matching against other templates)."""
    return p.get("match", p["root"] / "tm_ctf")


def run_tm(p: dict[str, Path], out: Path, a: argparse.Namespace) -> dict[str, Any]:
    """Template matching; its unknowns form one group (it cannot tell unknown molecules apart). Pose
    error: of the held-out particles whose best template is their own class (the pose of another
    template means nothing)."""
    from affinitomo.cluster.inputs import truth_for
    from affinitomo.evaluate import evaluate, pose_error
    from affinitomo.geometry import euler_to_matrix
    from affinitomo.io.particles import ANGLES, read_particles

    out, seconds = matching(p, a)
    res = read_particles(out / "particles.star")
    truth, labelled, known, unknown = truth_and_labels(p, out / "particles.star")
    assigned = res["afmClassName"].to_numpy().astype(str)
    groups = np.where(assigned == "unknown", len(known) + 1, res["rlnClassNumber"].to_numpy())
    ev = ~labelled
    metrics = evaluate(truth[ev], assigned[ev], groups[ev], groups[ev], known)
    true_angles = truth_for(res, p["data"] / "truth.star")[ANGLES].to_numpy(float)
    own = ev & (res["afmMatchTemplate"].to_numpy().astype(str) == truth) & np.isfinite(true_angles).all(1)
    metrics["pose_error"] = pose_error(euler_to_matrix(*res[ANGLES].to_numpy(float)[own].T),
                                       euler_to_matrix(*true_angles[own].T), truth[own])
    return {**summarise(metrics, known, unknown), "seconds": _timed(out, "match", seconds)}


def run_tm_classifier(p: dict[str, Path], out: Path, a: argparse.Namespace) -> dict[str, Any]:
    """The template scores alone as features of the pipeline's open-set classifier and clustering."""
    from affinitomo.cluster.inputs import read_matrix
    from affinitomo.cluster.pipeline import StageOptions, classify, known_class_order
    from affinitomo.evaluate import evaluate
    from affinitomo.grouping import group_particles
    from affinitomo.io.particles import read_particles
    from affinitomo.io.scores import read_scores
    from affinitomo.labels import class_numbers
    from affinitomo.labels import labelled_mask

    tm, seconds = matching(p, a)
    table = read_particles(p["extract"] / "particles.star")
    scores = read_scores(tm / "scores.csv", table)
    stage = StageOptions.from_dict(json.loads(a.cluster_options), "--cluster-options")
    labelled = labelled_mask(table)
    labels = table["afmClassName"].fillna("").astype(str).str.strip().to_numpy()
    known = known_class_order(labels[labelled], read_matrix(p["matrix"])[0], p["extract"] / "particles.star")
    cl = classify(np.empty((len(table), 0)), labels, labelled, known, stage.classify, None, "particles", scores)
    clusters, _ = group_particles(cl.features, cl.assigned == "unknown", stage.cluster, len(cl.known))
    numbers, _ = class_numbers(cl.known, cl.assigned, clusters, cl.trained)
    truth, labelled, known, unknown = truth_and_labels(p, p["extract"] / "particles.star")
    ev = ~labelled
    metrics = evaluate(truth[ev], cl.assigned[ev], numbers[ev], clusters[ev], cl.trained)
    return {**summarise(metrics, known, unknown), "seconds": _timed(tm, "match", seconds)}


def _timed(out: Path, what: str, seconds: float) -> float | None:
    """Wall time of a step, remembered in ``out/timing.json`` for runs that reuse its output."""
    path = out / "timing.json"
    times = json.loads(path.read_text()) if path.exists() else {}
    if seconds > 0:
        times[what] = {"seconds": round(seconds, 1), "load": load()}
        path.write_text(json.dumps(times))
    return (times.get(what) or {}).get("seconds")


def cluster_options(a: argparse.Namespace) -> dict[str, Any]:
    """``--cluster-options``, with the tilt range as the alignment's missing wedge unless given (as the workflow)."""
    values = json.loads(a.cluster_options)
    if "align_wedge" not in values and not values.get("align_no_wedge"):
        values["align_wedge"] = list(a.tilt_range)
    return values


def run_pipeline(p: dict[str, Path], variant: str, out: Path, a: argparse.Namespace) -> dict[str, Any]:
    """Train (cached), encode, embed, cluster and score one pipeline variant."""
    from affinitomo.cluster.pipeline import StageOptions, run_cluster

    options = {**json.loads(a.train_options), "epochs": a.epochs, **PIPELINE[variant]}
    train_dir, logs = out / "train", out / "logs"
    latents, embed = out / "latents.npz", out / "embed"
    sources = ["--stack", p["extract"] / "subtomos.npy", "--particles", p["extract"] / "particles.star",
               "--stack", p["simulated"] / "subtomos.npy", "--particles", p["simulated"] / "particles.star"]
    t_train = step(train_dir / "model.pt", ["train", *sources, "--matrix", p["matrix"], "--out", train_dir,
                                            "--device", "cpu", "--options", json.dumps(options), "--no-progress"],
                   logs / "train.log")
    step(latents, ["encode", "--checkpoint", train_dir / "model.pt", "--stack", p["extract"] / "subtomos.npy",
                   "--particles", p["extract"] / "particles.star", "--out", latents, "--device", "cpu"],
         logs / "encode.log")
    step(embed / "embedding.csv", ["embed", "--latents", latents, "--particles", p["extract"] / "particles.star",
                                   "--out", embed], logs / "embed.log")
    stage = StageOptions.from_dict(cluster_options(a), "--cluster-options")
    fused = a.features == "fused"
    t_cluster = time.perf_counter()
    summary = run_cluster(latents, embed / "embedding.csv", p["extract"] / "particles.star",
                          out / ("results" if fused else "results_latent"), truth_path=p["data"] / "truth.star",
                          matrix_path=p["matrix"], options=stage,
                          match_scores=matching(p, a)[0] / "scores.csv" if fused else None,
                          match_poses=matching(p, a)[0] / "particles.star" if fused else None,
                          stack_path=p["extract"] / "subtomos.npy")
    _, _, known, unknown = truth_and_labels(p, p["extract"] / "particles.star")
    return {**summarise(summary["metrics"], known, unknown), "seconds": _timed(out, "train", t_train),
            "cluster_seconds": round(time.perf_counter() - t_cluster, 1), "load_cluster": load(),
            "train_options": trained_with(train_dir / "model.pt")}


def trained_with(checkpoint: Path) -> dict[str, Any]:
    """The headline training options stored in a checkpoint (a reused model may predate --epochs)."""
    import torch

    config = torch.load(checkpoint, map_location="cpu", weights_only=True)["config"]
    return {k: config.get(k) for k in ("epochs", "semi_supervised", "augmentation", "gamma", "beta", "model")}


def fmt(v: Any, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table_row(r: dict[str, Any]) -> str:
    """One markdown row: variant, F1 known (per class), per unknown class fate, ARI/NMI, pose, time."""
    f1 = " ".join(f"{c}:{fmt(v)}" for c, v in r["f1"].items())
    unk = " ".join(f"{c}:{fmt(v['called_unknown'])}/{fmt(v['purity'])}/{fmt(v['completeness'])}"
                   for c, v in r["unknown"].items())
    pose = " ".join(f"{c}:{fmt(v, 0)}" for c, v in r["pose_median_deg"].items()) or "-"
    return (f"| {r['snr']:g} | {r['split']} | {r['variant']} | {fmt(r['f1_macro_known'])} | {f1} | {unk} | "
            f"{fmt(r['known_called_unknown'])} | {fmt(r['ari_clusters'])}/{fmt(r['nmi_clusters'])} | "
            f"{fmt(r['ari_groups'])}/{fmt(r['nmi_groups'])} | {pose} | {fmt(r['seconds'], 0)} |")


HEADER = ("| SNR | split | variant | F1 known | F1 per class | unknown: called unknown/purity/completeness of best "
          "group | known called unknown | ARI/NMI clusters | ARI/NMI groups | pose median ° | train (match) s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread (min, max) over splits, per (SNR, variant), of the headline numbers."""
    out = []
    for snr in sorted({r["snr"] for r in rows}):
        for variant in dict.fromkeys(r["variant"] for r in rows):
            sel = [r for r in rows if r["snr"] == snr and r["variant"] == variant]
            if not sel:
                continue
            entry: dict[str, Any] = {"snr": snr, "variant": variant, "splits": [r["split"] for r in sel]}
            values = {
                "f1_macro_known": [r["f1_macro_known"] for r in sel],
                "unknown_called_unknown": [v["called_unknown"] for r in sel for v in r["unknown"].values()],
                "unknown_group_purity": [v["purity"] or 0.0 for r in sel for v in r["unknown"].values()],
                "unknown_group_completeness": [v["completeness"] or 0.0 for r in sel for v in r["unknown"].values()],
                "known_called_unknown": [r["known_called_unknown"] for r in sel],
                "ari_clusters": [r["ari_clusters"] for r in sel], "ari_groups": [r["ari_groups"] for r in sel],
            }
            for k, v in values.items():
                v = [x for x in v if x is not None]
                entry[k] = {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v))} if v else None
            fates = [v for r in sel for v in r["unknown"].values()]
            entry["unknown_pure_majority"] = f"{sum(pure_majority(v) for v in fates)} of {len(fates)}"
            out.append(entry)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snr", type=float, nargs="+", default=[0.1])
    parser.add_argument("--split", type=int, nargs="+", default=[0], choices=range(len(SPLITS)))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--work", type=Path, default=None, help="work folder, reused between runs (default: temporary)")
    parser.add_argument("--json", type=Path, default=None, help="write all rows and the aggregate here")
    parser.add_argument("--epochs", type=int, default=20, help="the workflow default")
    parser.add_argument("--tomograms", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=25, help="particles per class per tomogram")
    parser.add_argument("--shape", nargs=3, default=["200", "512", "512"], metavar=("Z", "Y", "X"))
    parser.add_argument("--labelled-fraction", type=float, default=0.6)
    parser.add_argument("--simulated-per-class", type=int, default=1000, help="the workflow default")
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-options", default='{"model": {"decoder": "rotation"}}',
                        help="JSON training options shared by the pipeline variants (default: rotation decoder, "
                             "for pose error)")
    parser.add_argument("--cluster-options", default="{}", help="JSON options of the cluster stage")
    parser.add_argument("--features", choices=("fused", "latent"), default="fused",
                        help="pipeline variants: latents + template scores (the workflow default) or latents alone")
    parser.add_argument("--tilt-range", type=float, nargs=2, default=list(TILTS), metavar=("MIN", "MAX"),
                        help="tilt range of the simulated tilt series, degrees (default shrec.yaml's)")
    parser.add_argument("--defocus-um", type=float, default=DEFOCUS_UM, help="defocus of the simulated tilt series")
    parser.add_argument("--tag", default="", help="suffix of the variants' folders (e.g. other train options)")
    a = parser.parse_args()
    maps = shared_templates()
    if maps is None:
        print("bench_shrec: skipped: the SHREC maps (templates/maps_10A/<class>.mrc) are not under "
              "$AFFINITOMO_SHARED_DATA (default <repo>/../shared/data)")
        return 0
    from affinitomo.io.atomic import atomic_path

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or Path(tmp)
        print(HEADER, flush=True)
        for snr in a.snr:
            for split in a.split:
                load_before = load()
                p = prepare(work, maps, snr, split, a)
                for variant in a.variants:
                    out = p["root"] / (variant + a.tag)
                    out.mkdir(parents=True, exist_ok=True)
                    before = load()
                    run = {"tm": run_tm, "tm+classifier": run_tm_classifier}.get(variant)
                    r = run(p, out, a) if run else run_pipeline(p, variant, out, a)
                    name = variant + a.tag + (" (latents only)" if run is None and a.features == "latent" else "")
                    r.update(snr=snr, split=split, variant=name, unknown_classes=list(SPLITS[split]),
                             load_before=before, load_after=load(), load_prepare=load_before)
                    rows.append(r)
                    if "train_options" in r:
                        print(f"<!-- {variant}: {json.dumps(r['train_options'], default=str)} -->", flush=True)
                    print(table_row(r), flush=True)
    result = {"rows": rows, "aggregate": aggregate(rows), "args": {k: str(v) for k, v in vars(a).items()}}
    for agg in result["aggregate"]:
        print(json.dumps({k: (round(v["mean"], 3), round(v["min"], 3), round(v["max"], 3))
                          if isinstance(v, dict) else v for k, v in agg.items()}))
    if a.json:
        with atomic_path(a.json) as tmp_path:
            Path(tmp_path).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
