"""Extraction throughput and memory on a lab-sized tomogram.

Creates a 1024 x 1024 x 256 float32 MRC tomogram (1 GiB, random data) in a
temporary folder, extracts N random particles at 32^3 and 64^3 and prints
subtomograms/s and memory. Each case runs in a fresh child process so that its
peak memory is its own:

- ``VmHWM``: peak resident set size (anonymous memory *and* resident pages of
  memory-mapped files, tomogram and stack);
- ``RssAnon``: anonymous memory at the end of the run (heap: buffers, arrays);
- ``peak RssAnon``: the largest RssAnon sampled every 10 ms during the run.

The tomogram is written once, so it sits in the page cache: the figures are for
a warm cache (a cold read is bound by the disk). Usage::

    python benchmarks/bench_extract.py [--n 20000] [--boxes 32 64] [--profile]
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


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return -1


def make_tomogram(path: Path, shape: tuple[int, int, int] = (256, 1024, 1024), voxel_size: float = 10.0) -> None:
    """Write a random float32 MRC slab by slab (no 1 GiB array in memory)."""
    import mrcfile

    rng = np.random.default_rng(0)
    with mrcfile.new_mmap(path, shape=shape, mrc_mode=2, overwrite=True) as mrc:
        for z in range(shape[0]):
            mrc.data[z] = rng.standard_normal(shape[1:], dtype=np.float32)
        mrc.voxel_size = voxel_size
        mrc.update_header_stats()


def _case(tomo: str, n: int, box: int, out: str, profile: bool, queue) -> None:
    import pandas as pd

    from affinitomo.extract import extract_subtomograms

    rng = np.random.default_rng(1)
    shape = (256, 1024, 1024)
    zyx = rng.uniform(0, 1, size=(n, 3)) * (np.array(shape) - 1)
    table = pd.DataFrame(
        {
            "rlnTomoName": "tomo",
            "rlnCoordinateX": zyx[:, 2],
            "rlnCoordinateY": zyx[:, 1],
            "rlnCoordinateZ": zyx[:, 0],
            "afmPixelSize": 10.0,
            "afmParticleId": np.arange(n),
        }
    )
    peak_anon = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak_anon[0] = max(peak_anon[0], _status("RssAnon"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
    extract_subtomograms(table, {"tomo": Path(tomo)}, box, Path(out), progress=False)
    elapsed = time.perf_counter() - t0
    done.set()
    sampler.join()
    if profile:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    queue.put(
        {
            "box": box,
            "n": n,
            "seconds": elapsed,
            "subtomos_per_s": n / elapsed,
            "VmHWM_MB": _status("VmHWM") / 2**20,
            "RssAnon_end_MB": _status("RssAnon") / 2**20,
            "RssAnon_peak_MB": max(peak_anon[0], _status("RssAnon")) / 2**20,
            "stack_GB": n * box**3 * 4 / 1e9,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="particles per case at 32^3 (a quarter of that at 64^3)")
    parser.add_argument("--boxes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--tmp", default=None, help="folder for the temporary tomogram and stacks")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary per case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tomo = Path(tmp) / "tomo.mrc"
        t0 = time.perf_counter()
        make_tomogram(tomo)
        print(f"tomogram 1024x1024x256 float32 written in {time.perf_counter() - t0:.1f} s: {tomo}")
        ctx = mp.get_context("spawn")
        for box in args.boxes:
            n = args.n if box <= 32 else max(1, args.n * 32**3 // box**3 * 2)
            queue = ctx.Queue()
            proc = ctx.Process(target=_case, args=(str(tomo), n, box, str(Path(tmp) / f"out{box}"), args.profile, queue))
            proc.start()
            result = queue.get()
            proc.join()
            print(json.dumps(result))
            print(
                f"box {box}^3: {result['subtomos_per_s']:.0f} subtomograms/s ({n} in {result['seconds']:.2f} s), "
                f"peak RSS (VmHWM, incl. mapped file pages) {result['VmHWM_MB']:.0f} MB, "
                f"peak RssAnon {result['RssAnon_peak_MB']:.0f} MB"
            )


if __name__ == "__main__":
    main()
