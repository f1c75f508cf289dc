"""100k particles of 32^3 end to end after training: encode, UMAP transform, classify, cluster, write.

Builds N synthetic subtomograms (10 shapes: smooth random densities, random 90-degree turns,
Gaussian noise) as a memory-mapped stack on disk, trains the default model for three epochs on 2,000
labelled particles (not timed), then times the stages a lab runs on every particle, each as the
CLI verb the workflow calls, in its own process:

- ``encode`` (all N through the encoder, streamed in batches),
- ``embed`` (UMAP fitted on the labelled particles, transform of all N),
- ``cluster`` (Louvain on the latents' kNN graph, kNN open-set classifier, self-alignment of each
  unknown group, particles.star, one STAR per class, class averages streamed from the stack,
  plots, metrics).

Memory per stage: peak RssAnon (anonymous pages only: heap, arrays; sampled every 50 ms from
/proc/PID/status) and VmHWM (peak RSS, which also counts pages of the memory-mapped stack that the
kernel can drop). Nothing may hold all subtomograms in RAM: the stack is 13 GB at N = 100,000.

    python benchmarks/bench_scale.py [--n 100000] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from affinitomo.io.particles import write_particles

BOX = 32
CLASSES = [f"shape{i}" for i in range(10)]
LABELLED = 2000


def shapes(rng: np.random.Generator) -> np.ndarray:
    """Ten smooth random densities inside a sphere (bright on a dark background)."""
    grid = np.indices((BOX,) * 3) - BOX // 2
    sphere = (np.sqrt((grid**2).sum(0)) < BOX * 0.35).astype(np.float32)
    out = []
    for _ in CLASSES:
        density = ndimage.gaussian_filter(rng.normal(size=(BOX,) * 3), 2.5) * sphere
        out.append((density > np.percentile(density[sphere > 0], 60)).astype(np.float32))
    return np.stack(out)


def make_stack(path: Path, n: int, rng: np.random.Generator) -> np.ndarray:
    """Write ``n`` noisy, randomly turned copies of the shapes; return the class of each row."""
    templates = shapes(rng)
    classes = rng.integers(0, len(CLASSES), n)
    stack = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, BOX, BOX, BOX))
    for start in range(0, n, 1000):
        rows = np.arange(start, min(start + 1000, n))
        block = templates[classes[rows]]
        for i in range(len(rows)):
            k = rng.integers(0, 4, 2)
            block[i] = np.rot90(np.rot90(block[i], k[0], (1, 2)), k[1], (0, 2))
        stack[rows] = block + rng.normal(scale=1.0, size=block.shape).astype(np.float32)
    stack.flush()
    del stack
    return classes


def table(n: int, classes: np.ndarray, labelled: np.ndarray) -> pd.DataFrame:
    names = np.array(CLASSES)[classes]
    return pd.DataFrame({
        "rlnTomoName": [f"tomo{i % 20:02d}" for i in range(n)],
        "rlnCoordinateX": np.arange(n) % 1000 + 16.0, "rlnCoordinateY": 100.0, "rlnCoordinateZ": 50.0,
        "afmClassName": np.where(labelled, names, ""), "afmPixelSize": 10.0,
        "afmParticleId": np.arange(n), "truth": names,
    })


def run_measured(cmd: list[str], log: Path) -> dict:
    """Run ``cmd``; wall time, peak RssAnon and VmHWM of the process."""
    peak = [0]
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        status = Path(f"/proc/{proc.pid}/status")
        hwm = [0]

        def sample() -> None:
            while proc.poll() is None:
                try:
                    fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
                    peak[0] = max(peak[0], int(fields["RssAnon"].split()[0]))
                    hwm[0] = max(hwm[0], int(fields["VmHWM"].split()[0]))
                except (OSError, KeyError, ValueError):
                    pass
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        code = proc.wait()
        sampler.join()
    if code != 0:
        raise SystemExit(f"{cmd[1]} failed: see {log}\n{log.read_text()[-3000:]}")
    return {"seconds": round(time.perf_counter() - t0, 1), "RssAnon_peak_MB": round(peak[0] / 1024),
            "VmHWM_MB": round(hwm[0] / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--tmp", default=None, help="folder for the stack (needs N x 131 kB of disk)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    exe = [sys.executable, "-m", "affinitomo"]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        classes = make_stack(work / "subtomos.npy", args.n, rng)
        labelled = np.zeros(args.n, bool)
        labelled[rng.choice(args.n, min(LABELLED, args.n // 2), replace=False)] = True
        full = table(args.n, classes, labelled)
        write_particles(work / "particles.star", full.drop(columns="truth"))
        write_particles(work / "truth.star", full.assign(afmClassName=full["truth"]).drop(columns="truth"))
        # Training input: the labelled particles only, as their own small stack.
        rows = np.flatnonzero(labelled)
        np.save(work / "train.npy", np.load(work / "subtomos.npy", mmap_mode="r")[rows])
        write_particles(work / "train.star", full.iloc[rows].drop(columns="truth").reset_index(drop=True))
        matrix = np.full((len(CLASSES), len(CLASSES)), -0.2)
        np.fill_diagonal(matrix, 1.0)
        pd.DataFrame(matrix, columns=CLASSES).to_csv(work / "matrix.csv", index=False)
        print(f"data: {args.n} particles of {BOX}^3 ({args.n * BOX**3 * 4 / 1e9:.1f} GB stack) in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        train = run_measured(exe + ["train", "--stack", str(work / "train.npy"), "--particles", str(work / "train.star"),
                                    "--matrix", str(work / "matrix.csv"), "--out", str(work / "train"), "--device", "cpu",
                                    "--options", json.dumps({"epochs": 3})], work / "train.log")
        print(f"train (not part of the figure): {train}", flush=True)
        steps = {
            "encode": exe + ["encode", "--checkpoint", str(work / "train" / "model.pt"), "--stack",
                             str(work / "subtomos.npy"), "--particles", str(work / "particles.star"),
                             "--out", str(work / "latents.npz"), "--device", "cpu"],
            "embed": exe + ["embed", "--latents", str(work / "latents.npz"), "--particles",
                            str(work / "particles.star"), "--out", str(work / "embed")],
            "cluster": exe + ["cluster", "--latents", str(work / "latents.npz"), "--embedding",
                              str(work / "embed" / "embedding.csv"), "--particles", str(work / "particles.star"),
                              "--matrix", str(work / "matrix.csv"), "--out", str(work / "results")],
            "average": exe + ["average", "--latents", str(work / "latents.npz"), "--particles",
                              str(work / "particles.star"), "--stack", str(work / "subtomos.npy"),
                              "--out", str(work / "results")],
            "report": exe + ["report", "--latents", str(work / "latents.npz"), "--embedding",
                             str(work / "embed" / "embedding.csv"), "--particles", str(work / "particles.star"),
                             "--matrix", str(work / "matrix.csv"), "--stack", str(work / "subtomos.npy"),
                             "--checkpoint", str(work / "train" / "model.pt"), "--truth", str(work / "truth.star"),
                             "--training-log", str(work / "train" / "training.csv"), "--out", str(work / "results")],
        }
        figures = {}
        for name, cmd in steps.items():
            figures[name] = run_measured(cmd, work / f"{name}.log")
            print(f"{name}: {figures[name]}", flush=True)
        metrics = json.loads((work / "results" / "metrics.json").read_text())
        total = sum(f["seconds"] for f in figures.values())
        summary = {"n": args.n, "box": BOX, "cores": os.cpu_count(), "load_before": os.getloadavg()[0],
                   "steps": figures, "total_seconds": round(total, 1),
                   "peak_RssAnon_MB": max(f["RssAnon_peak_MB"] for f in figures.values()),
                   "f1_macro": metrics.get("f1_macro"), "ari": metrics.get("ari")}
        print(json.dumps(summary))
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
