"""``affinitomo apply``: new tomograms -> classes, with an earlier run's model, UMAP and classifier."""

from __future__ import annotations

import argparse
from pathlib import Path

from affinitomo.cli.common import add_trust_pickle


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, type=Path, metavar="DIR",
                        help="results folder of an earlier run (train/model.pt, embed/umap.npz, classifier.npz, "
                             "similarity/matrix.csv)")
    add_trust_pickle(parser, "the run's UMAP and classifier may be umap.pkl and classifier.pkl (older format); "
                             "they are written as embed/umap.npz and classifier.npz in --out")
    parser.add_argument("--tomograms", required=True, nargs="+", metavar="PATH", help="new tomograms (files or folders)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--particles", type=Path, metavar="FILE", help="particle table of the new tomograms")
    source.add_argument("--pick-diameter", type=float, metavar="ANGSTROM",
                        help="pick particles of this diameter (Å) with the reference-free picker instead")
    parser.add_argument("--pick-threshold", type=float, default=None, help="picker threshold (robust z-score)")
    parser.add_argument("--pick-polarity", choices=["bright", "dark"], default="bright", help="protein contrast")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="results folder to write")
    parser.add_argument("--pixel-size", type=float, default=None, help="Å per pixel where headers and table have none")
    parser.add_argument("--binning", type=int, default=1, help="as extraction for training (default 1)")
    parser.add_argument("--no-normalise", dest="normalise", action="store_false", help="as extraction for training")
    parser.add_argument("--invert", action="store_true", help="as extraction for training")
    parser.add_argument("--mask-radius", type=float, default=None, help="as extraction for training")
    parser.add_argument("--edge", choices=["pad", "skip"], default="pad", help="as extraction for training")
    parser.add_argument("--truth", type=Path, default=None, help="ground-truth table (same ids): writes metrics.json")
    parser.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda or mps")
    parser.add_argument("--templates", type=Path, default=None, metavar="DIR",
                        help="the template maps the earlier run matched against (needed when its classifier "
                             "uses template scores; default: the folder its match.json records, or its class "
                             "references of a template-free run); the search and CTF are always the run's own")
    parser.add_argument("--cluster-options", default=None, metavar="JSON",
                        help="the cluster stage's options, as 'affinitomo cluster --options' (JSON inline or a file); "
                             "give the earlier run's (its config's cluster section)")


def run(args: argparse.Namespace) -> int:
    from affinitomo.apply import apply_run
    from affinitomo.cluster.pipeline import StageOptions
    from affinitomo.options import read_options

    cluster_options = StageOptions.from_dict(*read_options(args.cluster_options, "--cluster-options"))
    apply_run(args.run, args.tomograms, args.out, particles=args.particles, pick_diameter=args.pick_diameter,
              pixel_size=args.pixel_size, binning=args.binning, normalise=args.normalise, invert=args.invert,
              mask_radius=args.mask_radius, edge=args.edge, truth=args.truth, device=args.device,
              pick_options={"threshold": args.pick_threshold, "polarity": args.pick_polarity, "progress": False},
              templates=args.templates, cluster_options=cluster_options, trust_pickle=args.trust_pickle)
    return 0
