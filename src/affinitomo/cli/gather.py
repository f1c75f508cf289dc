"""``affinitomo gather``: per-tomogram particle tables and latents -> one table and one latents file."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--particles", required=True, nargs="+", type=Path, metavar="STAR",
                        help="per-tomogram particle tables (extract's particles.star), in stack order")
    parser.add_argument("--latents", nargs="+", type=Path, default=None, metavar="NPZ",
                        help="per-tomogram latents.npz, one per table, same order")
    parser.add_argument("--out-particles", type=Path, default=None, help="gathered particle table (STAR)")
    parser.add_argument("--out-latents", type=Path, default=None, help="gathered latents.npz (with --latents)")


def run(args: argparse.Namespace) -> int:
    from affinitomo.gather import gather

    gather(args.particles, args.out_particles, args.latents, args.out_latents)
    return 0
