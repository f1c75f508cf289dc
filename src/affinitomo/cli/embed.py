"""``affinitomo embed``: fit a UMAP on the labelled particles' latents, apply it to all."""

from __future__ import annotations

import argparse

from affinitomo.cli.common import add_trust_pickle


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latents", required=True, help="latents.npz from 'affinitomo encode'")
    parser.add_argument("--particles", required=True, help="the extracted particle table (STAR)")
    parser.add_argument("--out", required=True, help="output folder for umap.npz and embedding.csv")
    parser.add_argument("--options", default=None,
                        help="JSON object (inline or a file): n_neighbors, min_dist, metric, n_components, "
                             "fit_on ('labelled'|'all'), seed, max_fit")
    parser.add_argument("--umap", default=None, metavar="NPZ",
                        help="umap.npz of an earlier run: transform only (no fit), so the particles land "
                             "on that run's map; --options are then ignored")
    add_trust_pickle(parser, "--umap may be a umap.pkl (older format); it is written as umap.npz in --out")


def run(args: argparse.Namespace) -> int:
    from affinitomo.cluster.run_info import check_against_run
    from affinitomo.embed import EmbedOptions, run_embed
    from affinitomo.options import read_options

    options = EmbedOptions.from_dict(*read_options(args.options))
    if args.umap is not None:
        check_against_run(args.umap, "umap", args.out)
    run_embed(args.latents, args.particles, args.out, options, umap_path=args.umap, trust_pickle=args.trust_pickle)
    return 0
