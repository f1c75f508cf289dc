"""``affinitomo report``: metrics, plots and run.json of a results folder of 'affinitomo cluster' + 'average'."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latents", required=True, help="latents.npz from 'affinitomo encode'")
    parser.add_argument("--embedding", required=True, help="embedding.csv from 'affinitomo embed'")
    parser.add_argument("--particles", required=True, help="the extracted particle table (STAR), as for 'cluster'")
    parser.add_argument("--out", required=True, help="results folder of 'affinitomo cluster' and 'affinitomo average'")
    parser.add_argument("--truth", default=None, help="ground-truth table (same ids): writes metrics.json")
    parser.add_argument("--matrix", default=None, help="similarity matrix CSV: writes latent_similarity.png")
    parser.add_argument("--training-log", default=None, help="training.csv: plotted as loss.png")
    parser.add_argument("--stack", nargs="+", default=None,
                        help="subtomos.npy, or one per tomogram: recorded in run.json; with --checkpoint, "
                             "writes reconstructions.png and traversals.png")
    parser.add_argument("--checkpoint", default=None, help="model.pt: recorded in run.json")
    parser.add_argument("--tomograms", nargs="+", default=None, metavar="PATH",
                        help="tomogram files or folders, recorded in run.json by file stem (for the viewer)")
    parser.add_argument("--particle-diameter", type=float, default=None, metavar="ANGSTROM",
                        help="particle diameter in Å, recorded in run.json (for the viewer)")


def run(args: argparse.Namespace) -> int:
    from affinitomo.cluster.report import write_report

    write_report(args.latents, args.embedding, args.particles, args.out, truth_path=args.truth,
                 matrix_path=args.matrix, training_log=args.training_log, stack_path=args.stack,
                 checkpoint=args.checkpoint, tomograms=args.tomograms, particle_diameter=args.particle_diameter)
    return 0
