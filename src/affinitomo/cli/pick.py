"""``affinitomo pick``: particle picking in tomograms -> STAR table.

Reference-free (DoG blobs) by default; with ``--templates`` by template matching (rotation
search, FFT cross-correlation, local NCC) against the maps the similarity and match stages use.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from affinitomo.cli.simulate import add_ctf_arguments
    from affinitomo.pick.blobs import DEFAULT_THRESHOLD, MIN_DISTANCE_FACTOR
    from affinitomo.pick.template import DEFAULT_RESOLUTION, DEFAULT_TEMPLATE_THRESHOLD

    parser.add_argument("--tomograms", required=True, nargs="+", type=Path, help="tomograms (MRC or TIFF); rlnTomoName = file stem")
    parser.add_argument("--diameter", required=True, type=float, help="particle diameter in Å")
    parser.add_argument("--out", required=True, type=Path, help="particle table to write (STAR)")
    parser.add_argument("--pixel-size", type=float, default=None, help="Å per pixel (default: the MRC header)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="robust z-score of the band-passed response (or, with --templates, of the best NCC), in background "
                             f"standard deviations (default {DEFAULT_THRESHOLD:g}; {DEFAULT_TEMPLATE_THRESHOLD:g} with --templates)")
    parser.add_argument("--min-distance", type=float, default=None,
                        help=f"minimum distance between picks in pixels (default {MIN_DISTANCE_FACTOR:g} diameters)")
    parser.add_argument("--max-count", type=int, default=None, help="at most this many picks per tomogram, best first")
    parser.add_argument("--edge-margin", type=int, default=None, help="pixels kept free at the tomogram's faces (default: the particle radius)")
    parser.add_argument("--polarity", choices=["bright", "dark"], default="bright",
                        help="protein density bright (as simulated; default) or dark (most raw reconstructions)")
    parser.add_argument("--slab", type=int, default=64, help="planes per slab (memory only, not results; default 64)")
    parser.add_argument("--bin", type=int, default=None,
                        help="block-average factor (default: particle spans >= 6 binned pixels; with --templates also "
                             "binned pixel <= resolution / 2)")
    tm = parser.add_argument_group("template matching (instead of blobs)")
    tm.add_argument("--templates", type=Path, default=None,
                    help="folder of template maps (.mrc) or models (.pdb, .cif), resampled to the tomogram's pixel size: "
                         "pick by template matching; --diameter still sets the NMS distance and edge margin")
    tm.add_argument("--angular-step", type=float, default=None,
                    help="rotation grid step in degrees (default: resolution / template radius, 4-30 degrees)")
    tm.add_argument("--resolution", type=float, default=None, help=f"working low-pass in Å (default {DEFAULT_RESOLUTION:g})")
    tm.add_argument("--wedge", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                    help="tilt range in degrees: apply this missing wedge to the templates (default: none)")
    ctf = parser.add_argument_group("CTF (with --templates)", "the tomograms' CTF, which then weights the templates "
                                    "as in the match stage (default: no CTF)")
    add_ctf_arguments(ctf, defocus=None)
    parser.add_argument("--ids-from-name", action="store_true",
                        help="particle ids = crc32(tomogram name) x 2^24 + rank, so tomograms picked in separate "
                             "jobs gather without id clashes (default: 0..N-1 over this call)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from affinitomo.cli.simulate import ctf_from_args
    from affinitomo.io.particles import write_particles
    from affinitomo.pick import pick_tomograms

    extra = {}
    if args.templates is not None:
        extra = dict(templates=args.templates, angular_step=args.angular_step, resolution=args.resolution,
                     wedge=None if args.wedge is None else tuple(args.wedge), ctf=ctf_from_args(args))
    elif args.angular_step is not None or args.resolution is not None or args.wedge is not None or args.defocus_um is not None:
        from affinitomo.errors import InputError

        raise InputError(None, "templates", "--templates DIR with --angular-step, --resolution, --wedge or --defocus-um")
    table = pick_tomograms(
        args.tomograms,
        diameter_A=args.diameter,
        pixel_size=args.pixel_size,
        threshold=args.threshold,
        min_distance=args.min_distance,
        max_count=args.max_count,
        edge_margin=args.edge_margin,
        slab=args.slab,
        polarity=args.polarity,
        bin=args.bin,
        progress=not args.no_progress,
        **extra,
    )
    if args.ids_from_name:
        from affinitomo.pick import ids_from_names

        table["afmParticleId"] = ids_from_names(table["rlnTomoName"].astype(str).to_numpy())
    write_particles(args.out, table)
    log.info("wrote %d picks from %d tomograms to %s", len(table), table["rlnTomoName"].nunique(), args.out)
    return 0
