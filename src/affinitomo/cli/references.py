"""``affinitomo references``: one reference per known class from its labelled particles (template-free mode)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", nargs="+", required=True, metavar="NPY",
                        help="subtomos.npy from extract, one per tomogram")
    parser.add_argument("--particles", nargs="+", required=True, metavar="STAR",
                        help="the stacks' tables from extract, in the same order; afmClassName labels choose "
                             "the particles of each class")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder: <class>.mrc (use it as 'affinitomo match --templates', without a "
                             "CTF) and references.json")
    parser.add_argument("--options", default=None,
                        help="JSON object (inline or a file): min_particles (default 3) and the cluster stage's "
                             "align_ options (align_starts, align_rounds, align_resolution, align_wedge, align_mask, ...), "
                             "seed")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")


def run(args: argparse.Namespace) -> int:
    from affinitomo.averaging.references import ReferenceOptions, run_references
    from affinitomo.options import read_options

    run_references(args.stack, args.particles, args.out, ReferenceOptions.from_dict(*read_options(args.options)),
                   args.device)
    return 0
