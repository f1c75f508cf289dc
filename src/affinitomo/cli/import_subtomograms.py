"""``affinitomo import-subtomograms``: subtomograms extracted elsewhere -> the extract stage's stack + table."""

from __future__ import annotations

import argparse
from pathlib import Path

from affinitomo.subtomogram_import import RESIZE_MODES, import_subtomograms


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subtomograms", required=True, type=Path, metavar="PATH",
                        help="a RELION subtomogram STAR file (rlnImageName: an MRC file per particle, or k@stack.mrcs) "
                             "or a folder of per-particle MRC files named <class>_<anything>.mrc")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output folder: subtomos.npy and particles.star, as `affinitomo extract` writes")
    parser.add_argument("--box", type=int, default=None, help="output box in voxels (default: the files' box)")
    parser.add_argument("--resize", choices=RESIZE_MODES, default="scale",
                        help="boxes of another size than --box: resample them (scale, the pixel size changes) or cut "
                             "or pad them about the centre (crop) (default scale)")
    parser.add_argument("--tomo", default=None, metavar="NAME",
                        help="only the particles of this pseudo-tomogram (rlnTomoName, else the STAR's stem or the "
                             "folder's name); one job per pseudo-tomogram")
    parser.add_argument("--labels-from-names", action="store_true",
                        help="label each particle with the class its file name starts with (<class>_...) as afmClassName")
    parser.add_argument("--pixel-size", type=float, default=None,
                        help="Å per subtomogram voxel where the MRC headers set none")
    parser.add_argument("--no-normalise", dest="normalise", action="store_false",
                        help="keep raw values (default: zero mean, unit std per subtomogram)")
    parser.add_argument("--invert", action="store_true", help="negate the contrast (dark protein -> bright)")
    parser.add_argument("--mask-radius", type=float, default=None,
                        help="spherical mask radius in output voxels (statistics inside it, zero outside)")


def run(args: argparse.Namespace) -> int:
    import_subtomograms(
        args.subtomograms, args.out, box=args.box, tomo=args.tomo, labels_from_names=args.labels_from_names,
        pixel_size=args.pixel_size, resize=args.resize, normalise=args.normalise, invert=args.invert,
        mask_radius=args.mask_radius,
    )
    return 0
