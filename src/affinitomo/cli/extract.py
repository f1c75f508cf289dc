"""``affinitomo extract``: particle table + tomograms -> subtomogram stack + table."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from affinitomo.extract import extract_subtomograms
from affinitomo.io.particles import read_particles
from affinitomo.io.tomograms import find_tomograms, tomogram_shapes
from affinitomo.io.volumes import open_volume

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--particles", required=True, type=Path, metavar="FILE",
                        help="particle table: RELION 4/5 STAR, CSV (x,y,z[,class][,tomo]) or copick picks JSON")
    parser.add_argument("--tomograms", required=True, nargs="+", metavar="PATH",
                        help="tomogram files or folders (.mrc, .rec, .map, .tif); names = file stems")
    parser.add_argument("--box", type=int, default=32, help="box size in output voxels (default 32)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--pixel-size", type=float, default=None,
                        help="Å per tomogram pixel where neither header nor table gives one (TIFF, CSV, copick)")
    parser.add_argument("--coordinate-pixel-size", type=float, default=None, metavar="Å",
                        help="Å per pixel of the table's pixel coordinates where its optics give none (e.g. "
                             "unbinned tilt-series pixels); rescaled to the tomogram's pixels")
    parser.add_argument("--binning", type=int, default=1, help="block-average binning factor (default 1)")
    parser.add_argument("--no-normalise", dest="normalise", action="store_false",
                        help="keep raw values (default: zero mean, unit std per subtomogram)")
    parser.add_argument("--invert", action="store_true", help="negate the contrast (dark protein -> bright)")
    parser.add_argument("--mask-radius", type=float, default=None,
                        help="spherical mask radius in output voxels (statistics inside it, zero outside)")
    parser.add_argument("--tomo", default=None, metavar="NAME",
                        help="extract only the particles of this tomogram (rlnTomoName); one job per tomogram")
    parser.add_argument("--edge", choices=["pad", "skip"], default="pad",
                        help="particles whose box reaches past an edge: pad with the mean, or skip (default pad)")


def run(args: argparse.Namespace) -> int:
    tomograms = find_tomograms(args.tomograms)
    default = next(iter(tomograms)) if len(tomograms) == 1 else None
    pixel = args.pixel_size if args.pixel_size is not None else _header_pixel_size(tomograms, args.tomo)
    table = read_particles(args.particles, pixel_size=pixel, tomogram_shapes=tomogram_shapes(tomograms),
                           default_tomo=default, only_tomo=args.tomo, coordinate_pixel_size=args.coordinate_pixel_size)
    log.info("read %d particles from %s (%s)%s", len(table), args.particles,
             table.attrs.get("source", {}).get("format"), f" in tomogram {args.tomo}" if args.tomo else "")
    extract_subtomograms(
        table, tomograms, args.box, args.out, binning=args.binning, normalise=args.normalise, invert=args.invert,
        mask_radius=args.mask_radius, edge=args.edge, pixel_size=args.pixel_size,
    )
    return 0


def _header_pixel_size(tomograms: dict[str, Path], only: str | None) -> float | None:
    """The header voxel size shared by the tomograms in use (``only``, else all); None when unset or differing."""
    paths = [tomograms[only]] if only in tomograms else list(tomograms.values())
    sizes = set()
    for path in paths:
        data, header = open_volume(path)
        del data
        sizes.add(header)
    if len(sizes) != 1 or None in sizes:
        return None
    return float(sizes.pop())
