"""``affinitomo encode``: latents (and poses) of every subtomogram with a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="model.pt written by 'affinitomo train'")
    parser.add_argument("--stack", required=True, type=Path, help="subtomos.npy (N x B x B x B float32)")
    parser.add_argument("--particles", required=True, type=Path, help="particle table; row i = stack row i")
    parser.add_argument("--out", required=True, type=Path, help="latents.npz to write")
    parser.add_argument("--batch-size", type=int, default=256, help="particles per batch (memory, not results)")
    parser.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda or mps")


def run(args: argparse.Namespace) -> int:
    from affinitomo.cluster.run_info import check_against_run
    from affinitomo.encode import encode
    from affinitomo.io.particles import read_particles
    from affinitomo.model.device import pick_device
    from affinitomo.model.loading import load_model

    load_model(args.checkpoint, pick_device(args.device))  # reject a foreign checkpoint before reading anything
    check_against_run(args.checkpoint, "checkpoint", args.out)
    table = read_particles(args.particles)
    encode(args.checkpoint, args.stack, table["afmParticleId"].to_numpy(), args.out,
           batch_size=args.batch_size, device=args.device)
    return 0
