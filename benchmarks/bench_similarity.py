"""Time the 12 x 12 SHREC similarity matrix and print it.

    /work/venv/bin/python benchmarks/bench_similarity.py [--score ncc|fsc] [--resolution 20]

Reads ``$AFFINITOMO_SHARED_DATA/templates/maps_10A`` (default ``<repo>/../shared/data``).
Prints wall and CPU time, the raw scores and the [-1, 1] matrix.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from affinitomo.similarity import compute_similarity


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--score", choices=["ncc", "fsc"], default="ncc")
    parser.add_argument("--resolution", type=float, default=20.0)
    parser.add_argument("--angular-step", type=float, default=None)
    args = parser.parse_args()
    data = Path(os.environ.get("AFFINITOMO_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    maps = data / "templates" / "maps_10A"
    if not maps.is_dir():
        print(f"skipped: {maps} not found (set AFFINITOMO_SHARED_DATA)", file=sys.stderr)
        return 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = compute_similarity([maps], score=args.score, resolution=args.resolution, angular_step=args.angular_step)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    np.set_printoptions(precision=2, suppress=True, linewidth=200)
    print(f"score={args.score} resolution={args.resolution} A voxel={result.voxel_size} A "
          f"torch threads={torch.get_num_threads()} device={'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"wall {wall:.1f} s, cpu {cpu:.1f} s, load average {os.getloadavg()[0]:.1f}")
    print("radii (A):", dict(zip(result.names, result.radii.round(0).tolist())))
    width = max(len(n) for n in result.names)
    for title, m in (("raw scores", result.raw), ("matrix", result.matrix)):
        print(f"\n{title}\n" + " " * (width + 1) + " ".join(f"{n:>6}" for n in result.names))
        for name, row in zip(result.names, m):
            print(f"{name:>{width}} " + " ".join(f"{v:6.2f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
