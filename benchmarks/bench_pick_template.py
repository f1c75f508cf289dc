"""Template-matching picker (``affinitomo pick --templates``): time and accuracy on a synthetic tomogram.

Writes a ``--shape`` tomogram (default 128 x 256 x 256 at 10 Å) holding ``--copies`` copies of
each of two SHREC template maps at random positions and rotations, plus Gaussian noise of
``--noise`` times the templates' standard deviation, then times ``affinitomo pick --templates``
on it in a child process and scores the picks (one-to-one within a quarter diameter; the
template of each matched pick).

Usage::

    python benchmarks/bench_pick_template.py --shared ../shared/data [--names 1bxn 3cf3]
        [--angular-step 30] [--resolution 40] [--threads 2] [--tmp /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd

from affinitomo.density.templates import load_templates
from affinitomo.geometry import random_matrices, rotate_volume
from affinitomo.io.particles import read_particles
from affinitomo.pick.evaluate import match_picks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--names", nargs="+", default=["1bxn", "3cf3"])
    ap.add_argument("--shape", type=int, nargs=3, default=[128, 256, 256], help="z y x")
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--noise", type=float, default=1.0)
    ap.add_argument("--diameter", type=float, default=200.0, help="Å")
    ap.add_argument("--angular-step", type=float, default=30.0)
    ap.add_argument("--resolution", type=float, default=40.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(dir=args.tmp))
    try:
        tpl = work / "templates"
        tpl.mkdir()
        for n in args.names:
            shutil.copy(args.shared / "templates" / "maps_10A" / f"{n}.mrc", tpl / f"{n}.mrc")
        box = 32
        names, stack, _ = load_templates(tpl, 10.0, box, 10.0)
        rng = np.random.default_rng(0)
        shape = np.array(args.shape)
        vol = rng.normal(0.0, args.noise, tuple(shape)).astype(np.float32)
        truth, centres = [], []
        while len(centres) < args.copies * len(names):
            p = rng.integers(box // 2, shape - box // 2)
            if all(np.abs(p - q).max() >= 0.9 * args.diameter / 10 for q in centres):
                centres.append(p)
        for k, (c, a) in enumerate(zip(centres, random_matrices(len(centres), rng))):
            lo = c - box // 2
            vol[lo[0] : lo[0] + box, lo[1] : lo[1] + box, lo[2] : lo[2] + box] += rotate_volume(stack[k % len(names)], a)
            truth.append({"rlnTomoName": "bench", "rlnCoordinateX": c[2], "rlnCoordinateY": c[1], "rlnCoordinateZ": c[0],
                          "afmClassName": names[k % len(names)]})
        with mrcfile.new(work / "bench.mrc") as mrc:
            mrc.set_data(vol)
            mrc.voxel_size = 10.0
        out = work / "picks.star"
        cmd = [sys.executable, "-m", "affinitomo", "pick", "--tomograms", str(work / "bench.mrc"), "--diameter",
               str(args.diameter), "--templates", str(tpl), "--angular-step", str(args.angular_step), "--resolution",
               str(args.resolution), "--out", str(out), "--no-progress"]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        seconds = time.perf_counter() - t0
        picks = read_particles(out)
        m = match_picks(picks, pd.DataFrame(truth), args.diameter / 10 / 4)
        rows = m["pick"].to_numpy()
        hit = rows >= 0
        right = float((picks["afmMatchClass"].to_numpy()[rows[hit]] == m["afmClassName"].to_numpy()[hit]).mean())
        print(json.dumps({"shape": args.shape, "templates": names, "angular_step": args.angular_step,
                          "resolution": args.resolution, "seconds": round(seconds, 1), "n_picks": len(picks),
                          "n_truth": len(truth), "precision": m.attrs["picks_matched"] / max(1, len(picks)),
                          "recall": float(hit.mean()), "template_right": right}))
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
