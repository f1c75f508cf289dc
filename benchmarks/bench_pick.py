"""Picking throughput and memory on a lab-sized tomogram; accuracy on the demo data when present.

1. Throughput: writes a 1024 x 1024 x 256 float32 MRC (1 GiB; Gaussian noise plus
   ``--particles`` soft balls of the given diameter, amplitude 0.5 noise sigma) to a
   temporary folder, then picks it in a fresh child process (``spawn``) per repeat and
   reports tomograms/hour and memory:

   - ``VmHWM``: peak resident set (anonymous memory *and* resident pages of the
     memory-mapped tomogram, which the picker drops after each slab);
   - ``RssAnon_peak``: the largest anonymous RSS sampled every 10 ms (buffers, arrays).

   The tomogram was just written, so it sits in the page cache (warm-cache figures).
2. Accuracy (``--demo DIR``, default ``data/demo`` of the repository, skipped when
   absent): picks every ``DIR/tomograms/*.mrc`` and compares with ``DIR/truth.star``:
   one-to-one matches within half a particle radius (per class from
   ``DIR/simulation.json`` when it lists ``radius_voxels``, else a quarter of the
   diameter); precision, recall, F1 and recall per class.

Usage::

    python benchmarks/bench_pick.py [--diameter 120] [--pixel-size 10] [--repeats 1]
        [--slab 64] [--demo data/demo --demo-diameter 220] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHAPE = (256, 1024, 1024)


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return -1


def make_tomogram(path: Path, diameter_px: float, n_particles: int, voxel_size: float) -> None:
    """Noise plus soft balls, written plane by plane into an MRC memory map."""
    import mrcfile

    rng = np.random.default_rng(0)
    radius = diameter_px / 2
    with mrcfile.new_mmap(path, shape=SHAPE, mrc_mode=2, overwrite=True) as mrc:
        for z in range(SHAPE[0]):
            mrc.data[z] = rng.standard_normal(SHAPE[1:], dtype=np.float32)
        half = int(np.ceil(radius + 3))
        grid = np.arange(-half, half + 1)
        centres = rng.uniform(half, np.array(SHAPE) - half - 1, size=(n_particles, 3)).astype(int)
        dist = np.sqrt(grid[:, None, None] ** 2 + grid[None, :, None] ** 2 + grid[None, None, :] ** 2)
        ball = (0.5 / (1 + np.exp((dist - radius) / 0.7))).astype(np.float32)
        for c in centres:
            mrc.data[c[0] - half : c[0] + half + 1, c[1] - half : c[1] + half + 1, c[2] - half : c[2] + half + 1] += ball
        mrc.voxel_size = voxel_size


def _case(tomo: str, kwargs: dict, queue) -> None:
    from affinitomo.pick import pick_tomogram

    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _status("RssAnon"))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    table = pick_tomogram(tomo, **kwargs)
    seconds = time.perf_counter() - t0
    done.set()
    thread.join()
    queue.put(
        {
            "seconds": round(seconds, 2),
            "tomograms_per_hour": round(3600 / seconds, 1),
            "picks": len(table),
            "VmHWM_MB": round(_status("VmHWM") / 2**20),
            "RssAnon_peak_MB": round(max(peak[0], _status("RssAnon")) / 2**20),
        }
    )


def throughput(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tomo = Path(tmp) / "tomo.mrc"
        t0 = time.perf_counter()
        make_tomogram(tomo, args.diameter / args.pixel_size, args.particles, args.pixel_size)
        print(f"tomogram 1024x1024x256 float32 written in {time.perf_counter() - t0:.1f} s")
        ctx = mp.get_context("spawn")
        kwargs = {"diameter_A": args.diameter, "slab": args.slab}
        for _ in range(args.repeats):
            queue = ctx.Queue()
            proc = ctx.Process(target=_case, args=(str(tomo), kwargs, queue))
            proc.start()
            result = queue.get()
            proc.join()
            print(json.dumps({"case": "throughput", "diameter_A": args.diameter, "pixel_size": args.pixel_size, "slab": args.slab, **result}))


def demo_accuracy(args: argparse.Namespace) -> None:
    from affinitomo.io.particles import read_particles
    from affinitomo.pick import pick_tomograms
    from affinitomo.pick.evaluate import pick_metrics

    demo = Path(args.demo)
    tomograms = sorted((demo / "tomograms").glob("*.mrc"))
    if not tomograms or not (demo / "truth.star").exists():
        print(f"demo accuracy skipped: no tomograms/*.mrc and truth.star under {demo}")
        return
    truth = read_particles(demo / "truth.star")
    pixel = float(truth["afmPixelSize"].iloc[0])
    meta_path = demo / "simulation.json"
    radii = {}
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        radii = {c["name"]: float(c["radius_voxels"]) for c in meta.get("classes", []) if "radius_voxels" in c}
    diameter = args.demo_diameter or (2 * pixel * float(np.mean(list(radii.values()))) if radii else None)
    if diameter is None:
        raise SystemExit("give --demo-diameter (Å): the demo has no simulation.json with class radii")
    tolerance = {k: r / 2 for k, r in radii.items()} if radii else diameter / pixel / 4
    t0 = time.perf_counter()
    picks = pick_tomograms(tomograms, diameter_A=diameter, polarity=args.polarity)
    seconds = time.perf_counter() - t0
    metrics = pick_metrics(picks, truth, tolerance)
    print(json.dumps({"case": "demo", "demo": str(demo), "diameter_A": round(diameter, 1), "seconds": round(seconds, 2),
                      **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in metrics.items() if k != "recall_per_class"},
                      "recall_per_class": {k: round(v, 3) for k, v in metrics["recall_per_class"].items()}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diameter", type=float, default=120.0, help="particle diameter in Å for the throughput case (default 120)")
    parser.add_argument("--pixel-size", type=float, default=10.0, help="Å per pixel of the synthetic tomogram (default 10)")
    parser.add_argument("--particles", type=int, default=2000, help="balls placed in the synthetic tomogram (default 2000)")
    parser.add_argument("--slab", type=int, default=64, help="planes per slab (default 64)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs (default 1)")
    parser.add_argument("--tmp", default=None, help="folder for the temporary 1 GiB tomogram")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--demo", default=str(REPO / "data" / "demo"), help="demo folder (tomograms/*.mrc, truth.star)")
    parser.add_argument("--demo-diameter", type=float, default=None, help="Å (default: twice the mean class radius of simulation.json)")
    parser.add_argument("--polarity", choices=["bright", "dark"], default="bright", help="of the demo tomograms (default bright)")
    args = parser.parse_args()
    if not args.skip_throughput:
        throughput(args)
    demo_accuracy(args)


if __name__ == "__main__":
    main()
