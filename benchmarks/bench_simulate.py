"""Benchmark: simulate one 512 x 512 x 200 tomogram with 300 particles (tilt series, CTF, WBP).

Templates: the 12 SHREC proteins in ``$AFFINITOMO_SHARED_DATA/templates/maps_10A``
(default ``<repo>/../shared/data``), 25 per class; when absent, the demo phantoms
(10 classes, 30 each). Prints wall time, peak RSS (VmHWM) and RssAnon.

    python benchmarks/bench_simulate.py [--out DIR] [--imaging tiltseries|wedge] [--noise gaussian|poisson]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from affinitomo.simulate.dataset import SimClass, simulate_dataset
from affinitomo.simulate.imaging import Imaging
from affinitomo.simulate.phantoms import demo_phantoms, render_phantom
from affinitomo.simulate.templates import load_templates

SHAPE = (200, 512, 512)
N_PARTICLES = 300


def proc_status(*keys: str) -> dict[str, str]:
    """Fields of /proc/self/status (Linux), e.g. VmHWM, RssAnon."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in keys:
                out[name] = value.strip()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output folder (default: a temporary folder, removed)")
    parser.add_argument("--imaging", default="tiltseries", choices=["tiltseries", "wedge"])
    parser.add_argument("--noise", default="gaussian", choices=["gaussian", "poisson"])
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    shared = Path(os.environ.get("AFFINITOMO_SHARED_DATA", repo.parent / "shared" / "data")) / "templates" / "maps_10A"
    t0 = time.perf_counter()
    if shared.is_dir():
        classes = [SimClass(n, v) for n, v in load_templates(shared, 10.0).items()]
        source = str(shared)
    else:
        print(f"shared templates not found at {shared}: using the demo phantoms", file=sys.stderr)
        classes = [SimClass(p.name, render_phantom(p, 32, 10.0)) for p in demo_phantoms()]
        source = "demo phantoms"
    per_class = N_PARTICLES // len(classes)
    imaging = Imaging(mode=args.imaging, noise=args.noise, contrast="dark")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        t1 = time.perf_counter()
        summary = simulate_dataset(out, classes, shape=SHAPE, per_class=per_class, imaging=imaging, seed=0, progress=False)
        t2 = time.perf_counter()
    status = proc_status("VmHWM", "RssAnon")
    tomo = summary["tomograms"][0]
    print(f"templates: {source} ({len(classes)} classes x {per_class} = {tomo['n_particles']} particles)")
    print(f"tomogram: {SHAPE[0]} x {SHAPE[1]} x {SHAPE[2]} [z,y,x], imaging {args.imaging}, noise {args.noise}, "
          f"{tomo.get('n_tilts', '-')} tilts, SNR achieved {tomo['snr_achieved']:.3f}")
    print(f"wall time: simulate {t2 - t1:.1f} s (+ template loading {t1 - t0:.1f} s); CPU cores {os.cpu_count()}")
    print(f"peak RSS (VmHWM): {status.get('VmHWM')}; RssAnon at end: {status.get('RssAnon')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
