"""``affinitomo average``: align the groups of 'affinitomo cluster' in 3-D; write particles.star and the averages."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latents", required=True, help="latents.npz from 'affinitomo encode' (the model's poses)")
    parser.add_argument("--particles", required=True, help="the extracted particle table (STAR), as for 'cluster'")
    parser.add_argument("--out", required=True,
                        help="results folder of 'affinitomo cluster': writes particles.star, classes.csv, "
                             "classes/, averages/ and average/ (for 'affinitomo report')")
    parser.add_argument("--stack", nargs="+", default=None,
                        help="subtomos.npy, or one per tomogram in the order of the table's rows: aligns the "
                             "unknown groups and writes averages/<class>.mrc")
    parser.add_argument("--match-poses", nargs="+", default=None, metavar="STAR",
                        help="particles.star of 'affinitomo match' (one, or one per tomogram): known-class particles "
                             "whose best template is their class take its pose (afmPoseSource)")
    parser.add_argument("--options", default=None,
                        help="JSON object (inline or a file) of the cluster options; this step reads the align_* "
                             "ones (align_unknown, align_starts, align_rounds, ..., align_regroup) and seed. The "
                             "regrouping uses the clustering options recorded by 'affinitomo cluster'")


def run(args: argparse.Namespace) -> int:
    from affinitomo.averaging.stage import average_groups
    from affinitomo.cluster.pipeline import StageOptions
    from affinitomo.options import read_options

    options = StageOptions.from_dict(*read_options(args.options))
    average_groups(args.latents, args.particles, args.out, stack_path=args.stack, match_poses=args.match_poses,
                   options=options.align)
    return 0
