"""Pose accuracy of the explicit-rotation decoder on simulated particles of asymmetric classes.

Simulates labelled particles of asymmetric classes at uniformly random poses with the code of
``affinitomo simulate particles`` (:func:`affinitomo.simulate.particles.simulate_particles`:
missing wedge about Y, noise at ``--snr``; ``afmSimulated`` = 1 and true angles in the table),
once for training and once (another seed) for held-out particles. Trains with
``model.decoder: rotation`` (the true poses of the simulated rows supervise the pose with weight
``--pose-weight``), encodes the held-out particles with the saved ``model.pt`` and prints, per
class, the median angular error of the predicted rotations after one best global rotation
(:func:`affinitomo.evaluate.pose_error`), and without any alignment (``raw``): ``held_out`` with
the pose refined through the decoder as ``affinitomo encode`` does (``--refine-steps``),
``held_out_encoder`` with the encoder's rotation alone, ``training_set_encoder`` the same on the
training particles (overfitting). Figures, not a timed test. Usage::

    python benchmarks/bench_pose.py [--source demo|shrec] [--per-class 1000] [--epochs 25] [--snr 0.5]

Defaults (3 demo classes x 1000 training particles, 25 epochs, channels 16) took 30 min on two
shared cores (load ~8; ~90 samples/s when quieter). Measured there, held-out median after the
global rotation: globule 8.3, l_long 4.6, l_short 5.8 degrees refined (encoder alone 21.3, 12.3,
9.5); with 300 per class and 20 epochs the globule stayed far off (encoder 84 degrees): the pose
regression needs many simulated particles per class.

``--source demo``: the demo phantoms without symmetry (l_short, l_long, globule);
``--source shrec``: maps from ``$AFFINITOMO_SHARED_DATA/templates/maps_10A`` (``--classes``;
skipped with a message when the folder is absent).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from affinitomo.encode import encode_stack
from affinitomo.errors import InputError
from affinitomo.evaluate import pose_error
from affinitomo.geometry import angular_distance, euler_to_matrix
from affinitomo.io.particles import ANGLES, read_particles
from affinitomo.io.similarity import write_similarity
from affinitomo.io.stacks import SubtomoStack
from affinitomo.model.loading import load_model
from affinitomo.model.refine import REFINE_STEPS
from affinitomo.model.train_config import config_from_dict
from affinitomo.simulate.imaging import Imaging
from affinitomo.simulate.particles import simulate_particles
from affinitomo.simulate.phantoms import demo_phantoms, render_phantom
from affinitomo.simulate.templates import load_templates
from affinitomo.train.labels import load_training_data
from affinitomo.train.loop import train

BOX = 32
VOXEL = 10.0
SHREC_ASYMMETRIC = ("1s3x", "3gl1", "3d2f", "1u6g")  # single chains / C1 complexes that fit 32^3 at 10 Å


def shared_data() -> Path:
    """The reference data folder ($AFFINITOMO_SHARED_DATA, default <repo>/../shared/data)."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("AFFINITOMO_SHARED_DATA", default))


def asymmetric_templates(source: str, classes: list[str] | None) -> dict[str, np.ndarray] | None:
    """Template maps (name -> ``[z, y, x]`` at 10 Å); None when the SHREC maps are absent."""
    if source == "demo":
        chosen = [p for p in demo_phantoms() if p.symmetry == "C1"]
        if classes:
            chosen = [p for p in chosen if p.name in classes]
        return {p.name: render_phantom(p, BOX, VOXEL) for p in chosen}
    folder = shared_data() / "templates" / "maps_10A"
    if not folder.is_dir():
        return None
    maps = load_templates(folder, VOXEL)
    wanted = classes or list(SHREC_ASYMMETRIC)
    missing = sorted(set(wanted) - set(maps))
    if missing:
        raise InputError(folder, "classes", f"template names among {sorted(maps)}, got {missing}")
    return {name: maps[name] for name in wanted}


def true_rotations(star: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 3) true poses and (N,) class names of a simulated table."""
    table = read_particles(star)
    return euler_to_matrix(*table[list(ANGLES)].to_numpy(float).T), table["afmClassName"].to_numpy().astype(str)


def raw_error(pred: np.ndarray, true: np.ndarray, names: np.ndarray) -> dict[str, float]:
    """Median angle between predicted and true rotations per class, with no alignment."""
    err = angular_distance(pred, true)
    return {c: round(float(np.median(err[names == c])), 2) for c in sorted(set(names))}


def summarise(pred: np.ndarray, true: np.ndarray, names: np.ndarray) -> dict:
    """Per-class medians after the best global rotation (right and left), and raw."""
    aligned = pose_error(pred, true, names)
    per = {c: {"median_deg": round(v["median_deg"], 2), "median_deg_left": round(v["median_deg_left"], 2),
               "fraction_below_30deg": round(v["fraction_below_30deg"], 3), "n": v["n"]}
           for c, v in aligned["per_class"].items()}
    return {"per_class": per, "median_deg": round(aligned["median_deg"], 2), "raw_median_deg": raw_error(pred, true, names)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["demo", "shrec"], default="demo")
    parser.add_argument("--classes", nargs="*", help="class names (default: all asymmetric demo phantoms, or "
                        + ", ".join(SHREC_ASYMMETRIC) + ")")
    parser.add_argument("--per-class", type=int, default=1000, help="training particles per class")
    parser.add_argument("--test-per-class", type=int, default=100, help="held-out particles per class")
    parser.add_argument("--snr", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--pose-weight", type=float, default=1.0)
    parser.add_argument("--augmentation", default="wedge", choices=["wedge", "rot90", "none"])
    parser.add_argument("--refine-steps", type=int, default=REFINE_STEPS, help="pose refinement steps at encoding")
    parser.add_argument("--options", default="{}", help="extra training options (JSON), merged last")
    parser.add_argument("--work", type=Path, help="keep the files here (default: a temporary folder)")
    args = parser.parse_args()

    templates = asymmetric_templates(args.source, args.classes)
    if templates is None:
        print(f"skipped: no SHREC template maps in {shared_data() / 'templates' / 'maps_10A'}")
        return 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        imaging = Imaging(mode="wedge", snr=args.snr)
        for name, seed, n in (("train", 0, args.per_class), ("test", 1, args.test_per_class)):
            if not (work / name / "particles.star").exists():
                simulate_particles(templates, work / name, per_class=n, box=BOX, voxel_size=VOXEL,
                                   imaging=imaging, seed=seed, progress=False)
        names = list(templates)
        write_similarity(work / "matrix.csv", names, np.eye(len(names)))
        data = load_training_data(SubtomoStack(work / "train" / "subtomos.npy"), work / "train" / "particles.star",
                                  work / "matrix.csv")
        options = {"model": {"decoder": "rotation", "channels": args.channels}, "epochs": args.epochs,
                   "pose_weight": args.pose_weight, "augmentation": args.augmentation, "checkpoint_every": 1000,
                   **json.loads(args.options)}
        cfg = config_from_dict(options)
        simulated_s = time.perf_counter() - t0
        history = train(data, work / "model", cfg, progress=False)
        model, _ = load_model(work / "model" / "model.pt")
        result = {}
        for name, label, steps in (("test", "held_out", args.refine_steps), ("test", "held_out_encoder", 0),
                                   ("train", "training_set_encoder", 0)):
            stack = SubtomoStack(work / name / "subtomos.npy")
            start = time.perf_counter()
            pred = encode_stack(model, stack, cfg.normalise, progress=False, refine_steps=steps)["rotation"]
            true, classes = true_rotations(work / name / "particles.star")
            result[label] = summarise(pred, true, classes) | {"encode_s": round(time.perf_counter() - start, 1)}
    print(json.dumps({
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "classes": names, "snr": args.snr, "per_class": args.per_class, "test_per_class": args.test_per_class,
        "options": cfg.to_dict() | {"beta": cfg.beta.__dict__, "gamma": cfg.gamma.__dict__},
        "final_train_pose_loss": round(history[-1]["train_pose"], 4), "final_val_pose_loss": round(history[-1]["val_pose"], 4),
        "refine_steps": args.refine_steps, **result,
        "simulate_s": round(simulated_s, 1), "total_s": round(time.perf_counter() - t0, 1),
        "load_1min": round(os.getloadavg()[0], 2),
    }, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
