"""Template matching on realistic simulations: each realism knob of `simulate templates` alone vs the exact case.

A small SHREC-like set: the 12 maps of ``templates/maps_10A`` at 10 Å, 4cr2 and 5mrc held out (the two
without an atomic model in ``templates/pdb``, so every known class has one for ``--template-source pdb``),
imaged as ``workflow/configs/shrec.yaml`` (tilt series ±60°/3°, CTF at 3 µm, WBP, dark protein, SNR 0.1).
Each variant simulates the set with one knob on (same seed: same placement, poses and noise draws as the
exact case, :mod:`affinitomo.simulate.realism`), extracts 32^3 boxes (inverted, as the workflow) and runs
the match stage alone (:func:`affinitomo.match.match_particles`: the written templates, the stated
defocus's CTF, the ±60° wedge, 'unknown' below the 5th percentile of the labelled particles' scores).
Refinement: the best template of each particle (and its label), from one candidate pose
(``--full-refine``: the stage's default, 3 templates from 2 candidates each; on the exact case at 10
particles per class both gave F1 0.913, the default in twice the time). Variants run ``--jobs`` at a
time, one torch thread each (on 2 shared cores one thread matched in 0.6x the CPU time of two).
Scored on the particles that were not labelled: known-class macro F1 of template matching, the
fraction of known particles called unknown, the fraction of held-out particles called unknown.
The last variant turns on every knob at the values of ``workflow/configs/shrec_realistic.yaml``. Usage::

    python benchmarks/bench_realism.py [--work DIR] [--variants exact deform ...] [--json out.json]

Skips (exit 0) with a message when the reference data are absent (``$AFFINITOMO_SHARED_DATA``,
default ``<repo>/../shared/data``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

from bench_shrec import load, shared_templates

HELD_OUT = ("4cr2", "5mrc")
DEFOCUS_UM = 3.0
#: Realistic values of each knob (those of workflow/configs/shrec_realistic.yaml): realism, imaging, templates.
REALISTIC = {
    "deform_rms_A": 5.0,
    "occupancy_min": 0.6,
    "partner_fraction": 0.3,
    "missing_fraction": 0.3,
    "defocus_spread_um": 0.5,
}
VARIANTS = {
    "exact": {},
    "deform": {"realism": {"deform_rms_A": REALISTIC["deform_rms_A"]}},
    "occupancy": {"realism": {"occupancy_min": REALISTIC["occupancy_min"]}},
    "partner": {"realism": {"partner_fraction": REALISTIC["partner_fraction"]}},
    "missing": {"realism": {"missing_fraction": REALISTIC["missing_fraction"]}},
    "defocus-spread": {"realism": {"defocus_spread_um": REALISTIC["defocus_spread_um"]}},
    "dose-symmetric": {"dose_symmetric": True},
    "template-lowpass": {"template_source": "lowpass-bfactor"},
    "template-pdb": {"template_source": "pdb"},
    "all": {"realism": REALISTIC, "dose_symmetric": True, "template_source": "pdb"},
}


def describe(spec: dict) -> str:
    """The knobs of a variant, as `simulate templates` flags."""
    flags = [f"--{k.replace('_', '-')} {v:g}" for k, v in spec.get("realism", {}).items()]
    if spec.get("dose_symmetric"):
        flags.append("--dose-symmetric")
    if "template_source" in spec:
        flags.append(f"--template-source {spec['template_source']}")
    return " ".join(flags) or "(none)"


def build_set(spec: dict, data: Path, extract: Path, maps: Path, pdb: Path, a: argparse.Namespace,
              held_out: tuple[str, ...] = HELD_OUT) -> float:
    """Simulate the set with a variant's knobs into ``data`` and extract it into ``extract`` (each step
    skipped when its output exists); the simulation's seconds. ``a``: snr, per_class, shape, tomograms,
    seed, box."""
    import torch

    from affinitomo.extract import extract_subtomograms
    from affinitomo.io.particles import read_particles
    from affinitomo.simulate.imaging import Imaging
    from affinitomo.simulate.realism import Realism
    from affinitomo.simulate.templates import simulate_from_templates

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if not (data / "truth.star").exists():
        imaging = Imaging(mode="tiltseries", tilt_min=-60, tilt_max=60, tilt_step=3, snr=a.snr, contrast="dark",
                          defocus_um=DEFOCUS_UM, dose_symmetric=spec.get("dose_symmetric", False))
        simulate_from_templates(maps, data, per_class=a.per_class, shape=a.shape, n_tomograms=a.tomograms,
                                held_out=held_out, labelled_fraction=0.5, imaging=imaging, seed=a.seed, progress=False,
                                realism=Realism(**spec.get("realism", {})),
                                template_source=spec.get("template_source", "same"), pdb=pdb)
    t_sim = time.perf_counter() - t0
    if not (extract / "subtomos.npy").exists():
        tomos = {p.stem: p for p in sorted((data / "tomograms").glob("*.mrc"))}
        extract_subtomograms(read_particles(data / "particles.star"), tomos, a.box, extract, invert=True, progress=False)
    return t_sim


def run_variant(name: str, spec: dict, work: Path, maps: Path, pdb: Path, a: argparse.Namespace) -> dict:
    """Simulate, extract and match one variant (each step skipped when its output exists); its scores."""
    from affinitomo.density.ctf import CtfParameters
    from affinitomo.match import MatchOptions, match_particles
    from affinitomo.search.stack import SearchOptions

    data, extract, match = work / name / "data", work / name / "extract", work / name / "match"
    t0 = time.perf_counter()
    t_sim = build_set(spec, data, extract, maps, pdb, a)
    if not (match / "particles.star").exists():
        search = SearchOptions() if a.full_refine else SearchOptions(refine_classes=1, n_candidates=1)
        opts = MatchOptions(search, ctf=CtfParameters(DEFOCUS_UM), device="cpu")
        match_particles(extract / "subtomos.npy", extract / "particles.star", data / "templates", match, opts, progress=False)
    seconds = time.perf_counter() - t0
    return {"variant": name, "flags": describe(spec), **score(data, match), "simulate_s": round(t_sim, 1),
            "seconds": round(seconds, 1), "load": load()}


def score(data: Path, match: Path) -> dict:
    """Known-class macro F1 (and per class), known called unknown, held-out called unknown; unlabelled particles."""
    from affinitomo.evaluate import per_class_scores
    from affinitomo.io.particles import read_particles

    res = read_particles(match / "particles.star")
    ids = res["afmParticleId"].to_numpy()
    truth = read_particles(data / "truth.star").set_index("afmParticleId").loc[ids, "afmClassName"].to_numpy().astype(str)
    labelled = read_particles(data / "particles.star").set_index("afmParticleId").loc[ids, "afmClassName"].fillna("").to_numpy() != ""
    classes = pd.read_csv(data / "classes.csv")
    known = classes.loc[classes["known"].astype(str) == "True", "name"].tolist()
    t, assigned = truth[~labelled], res["afmClassName"].to_numpy().astype(str)[~labelled]
    per = per_class_scores(t, assigned, known)
    is_known = np.isin(t, known)
    return {
        "f1_macro_known": float(np.mean([per[c]["f1"] for c in known])),
        "f1": {c: round(per[c]["f1"], 3) for c in known},
        "known_called_unknown": float(np.mean(assigned[is_known] == "unknown")),
        "held_out_called_unknown": float(np.mean(assigned[~is_known] == "unknown")) if (~is_known).any() else None,
        "n_scored": int(len(t)),
    }


HEADER = ("| variant | knob (simulate templates flags) | F1 known | Δ vs exact | known called unknown | "
          "held-out called unknown | s |\n|---|---|---|---|---|---|---|")


def table_row(r: dict, exact: float | None) -> str:
    delta = "-" if exact is None or r["variant"] == "exact" else f"{r['f1_macro_known'] - exact:+.3f}"
    held = "-" if r["held_out_called_unknown"] is None else f"{r['held_out_called_unknown']:.2f}"
    return (f"| {r['variant']} | {r['flags']} | {r['f1_macro_known']:.3f} | {delta} | {r['known_called_unknown']:.2f} | "
            f"{held} | {r['seconds']:.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--work", type=Path, default=None, help="work folder, reused between runs (default: temporary)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--snr", type=float, default=0.1, help="shrec.yaml's")
    parser.add_argument("--tomograms", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=8, help="particles per class per tomogram")
    parser.add_argument("--shape", type=int, nargs=3, default=[100, 256, 256], metavar=("Z", "Y", "X"))
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="variants run at a time (default 2: the cores)")
    parser.add_argument("--full-refine", action="store_true", help="the match stage's default refinement (slower)")
    a = parser.parse_args()
    maps = shared_templates()
    pdb = None if maps is None else maps.parent / "pdb"
    if maps is None or not pdb.is_dir():
        print("bench_realism: skipped: the SHREC maps and models (templates/maps_10A, templates/pdb) are not under "
              "$AFFINITOMO_SHARED_DATA (default <repo>/../shared/data)")
        return 0
    print(f"<!-- {a.tomograms} tomograms {' x '.join(map(str, a.shape))}, {a.per_class} per class each, SNR {a.snr:g}, "
          f"held out {' '.join(HELD_OUT)}, seed {a.seed}; load before {load()} -->", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(max_workers=a.jobs) as pool:
        work = a.work or Path(tmp)
        jobs = {pool.submit(run_variant, name, VARIANTS[name], work, maps, pdb, a): name for name in a.variants}
        done = {}
        for job in as_completed(jobs):
            done[jobs[job]] = job.result()
            print(f"<!-- done: {jobs[job]} ({done[jobs[job]]['seconds']:.0f} s) -->", flush=True)
    rows = [done[name] for name in a.variants]
    exact = done["exact"]["f1_macro_known"] if "exact" in done else None
    print(HEADER)
    for r in rows:
        print(table_row(r, exact))
    for r in rows:
        print(f"<!-- {r['variant']}: per-class F1 {json.dumps(r['f1'])}; load {r['load']} -->")
    print(f"<!-- total {time.perf_counter() - t0:.0f} s, load after {load()} -->")
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "args": {k: str(v) for k, v in vars(a).items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
