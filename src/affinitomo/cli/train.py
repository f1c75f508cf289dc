"""``affinitomo train``: train an Affinity-VAE on labelled subtomograms and a similarity matrix.

Several sources: ``--stack S1 --particles P1 --stack S2 --particles P2`` (paired in order),
e.g. the extracted particles and particles simulated from the templates.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, type=Path, action="append",
                        help="subtomos.npy (N x B x B x B float32); repeat for several sources")
    parser.add_argument("--particles", required=True, type=Path, action="append",
                        help="particle table of the stack given at the same position; labels from "
                             "afmClassName, simulated rows (afmSimulated=1) with true angles")
    parser.add_argument("--matrix", required=True, type=Path, help="similarity matrix CSV (reference format)")
    parser.add_argument("--out", required=True, type=Path, help="output folder: model.pt, best.pt, training.csv, loss.png")
    parser.add_argument("--options", default=None,
                        help="training options as a JSON string or a YAML/JSON file (see TrainConfig)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/model.pt")
    parser.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda or mps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from affinitomo.cli import fail
    from affinitomo.errors import InputError
    from affinitomo.model.train_config import parse_options
    from affinitomo.train.labels import load_training_sources
    from affinitomo.train.loop import TrainingDiverged, train

    if len(args.stack) != len(args.particles):
        raise InputError("--particles", None,
                         f"one --particles per --stack, paired in order; got {len(args.stack)} stacks "
                         f"and {len(args.particles)} tables")
    config = parse_options(args.options)
    data = load_training_sources(list(zip(args.stack, args.particles)), args.matrix)
    try:
        train(data, args.out, config, resume=args.resume, device=args.device, progress=not args.no_progress)
    except TrainingDiverged as exc:
        return fail("train", str(exc), 1)
    return 0
