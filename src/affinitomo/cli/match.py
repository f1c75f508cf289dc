"""``affinitomo match``: subtomogram stack + table + templates -> classes, scores and poses."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from affinitomo.cli.simulate import add_ctf_arguments, ctf_from_args
from affinitomo.match import MatchOptions, match_particles
from affinitomo.search.stack import SearchOptions

log = logging.getLogger(__name__)


def _step(value: str) -> float | None:
    if value == "auto":
        return None
    try:
        step = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'auto' or degrees, got {value!r}") from exc
    if not 0 < step <= 180:
        raise argparse.ArgumentTypeError(f"an angular step in (0, 180] degrees, got {step}")
    return step


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, type=Path, metavar="NPY", help="subtomogram stack from extract (subtomos.npy)")
    parser.add_argument("--particles", required=True, type=Path, metavar="STAR",
                        help="the stack's table from extract; afmClassName labels set the unknown thresholds")
    parser.add_argument("--templates", required=True, type=Path, metavar="DIR",
                        help="template maps (.mrc, voxel size in the header, protein bright, centred) or models (.pdb/.cif); class = file stem")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder: particles.star, scores.csv (afmParticleId + one score column per template)")
    parser.add_argument("--angular-step", type=_step, default=None, metavar="DEG|auto",
                        help="global grid step (default auto: resolution / particle radius at the binned resolution)")
    parser.add_argument("--lowpass-A", dest="lowpass", type=float, default=20.0, help="working resolution in Å (default 20)")
    wedge = parser.add_mutually_exclusive_group()
    wedge.add_argument("--wedge", nargs=2, type=float, default=[-60.0, 60.0], metavar=("MIN", "MAX"),
                       help="tilt range in degrees (tilt axis y, beam z) whose missing wedge is applied to the rotated templates (default -60 60)")
    wedge.add_argument("--no-wedge", action="store_true", help="no missing wedge (e.g. wedge-compensated data)")
    ctf = parser.add_argument_group("CTF", "the tomograms' CTF, which then weights the templates "
                                    "(matched filter; set --defocus-um for data reconstructed without CTF correction, "
                                    "add --phase-flip for phase-flipped data)")
    add_ctf_arguments(ctf, defocus=None)
    parser.add_argument("--unknown-percentile", type=float, default=5.0,
                        help="'unknown' below this percentile of the labelled particles' own-class scores (default 5; 0 = never)")
    parser.add_argument("--pooled-threshold", action="store_true",
                        help="one threshold over all labelled particles instead of one per class")
    parser.add_argument("--max-shift", type=float, default=2.0, help="translation search radius in voxels of the stack (default 2)")
    parser.add_argument("--refine-classes", type=int, default=3, help="templates refined per particle (default 3)")
    parser.add_argument("--settings", type=Path, default=None, metavar="JSON",
                        help="match.json of an earlier match: its search, CTF and open-set settings replace the "
                             "options above (how 'apply' matches new particles as the trained run did)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    search = SearchOptions(
        resolution=args.lowpass, angular_step=args.angular_step, wedge=None if args.no_wedge else tuple(args.wedge),
        max_shift=args.max_shift, refine_classes=args.refine_classes,
    )
    opts = MatchOptions(search, ctf=ctf_from_args(args), unknown_percentile=args.unknown_percentile,
                        per_class_threshold=not args.pooled_threshold, device=args.device)
    if args.settings is not None:
        from affinitomo.match.settings import read_settings

        opts = read_settings(args.settings, args.device)
        log.info("settings of %s: %s", args.settings, opts)
    match_particles(args.stack, args.particles, args.templates, args.out, opts, progress=args.progress)
    log.info("wrote %s and %s", args.out / "particles.star", args.out / "scores.csv")
    return 0
