"""``affinitomo similarity``: compute a similarity matrix from structures, or check a given one.

Compute::

    affinitomo similarity --templates DIR_OR_FILES... --out matrix.csv [--plot similarity.png]
        [--score ncc|fsc] [--resolution 20] [--angular-step auto] [--voxel-size A] [--classes a b]

Validate / select / reorder / symmetrise a given matrix::

    affinitomo similarity --matrix given.csv --out matrix.csv [--classes a b | --classes-from particles.star]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from affinitomo.errors import InputError

log = logging.getLogger(__name__)


def _step(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'auto' or degrees, got {text!r}") from None
    if not 0 < value <= 180:
        raise argparse.ArgumentTypeError(f"an angle in (0, 180] degrees, got {value}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a positive number, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--templates", nargs="+", metavar="PATH", help="folders or files: MRC maps, PDB/mmCIF models (class name = file stem)")
    source.add_argument("--matrix", metavar="CSV", help="a given similarity matrix to validate, select and symmetrise")
    parser.add_argument("--out", required=True, metavar="CSV", help="output matrix (header of class names, square matrix)")
    parser.add_argument("--plot", metavar="PNG", help="also write a heatmap ordered by hierarchical clustering")
    classes = parser.add_mutually_exclusive_group()
    classes.add_argument("--classes", nargs="+", metavar="NAME", help="select and order these classes")
    classes.add_argument("--classes-from", metavar="STAR", help="classes = non-empty afmClassName values of a particle table")
    parser.add_argument("--score", choices=["ncc", "fsc"], default="ncc", help="normalised cross-correlation or mean FSC up to the resolution (default ncc)")
    parser.add_argument("--resolution", type=_positive, default=20.0, help="working resolution in Å (default 20)")
    parser.add_argument("--angular-step", type=_step, default=None, metavar="DEG|auto", help="global rotation grid step (default auto: degrees(resolution / radius))")
    parser.add_argument("--voxel-size", type=_positive, default=None, metavar="A", help="common grid voxel size in Å (default resolution / 2)")
    parser.add_argument("--input-voxel-size", type=_positive, default=None, metavar="A", help="voxel size of MRC inputs whose header has none")
    parser.add_argument("--scale", choices=["stretch", "none"], default="stretch", help="map raw scores to [-1, 1]: stretch (least similar pair -1) or none")
    parser.add_argument("--device", default=None, help="torch device (default cuda when available, else cpu)")


def classes_from_table(path: str | Path) -> list[str]:
    """Non-empty ``afmClassName`` values of a particle table, ordered by class number then name."""
    path = Path(path)
    try:
        from affinitomo.io.particles import read_particles
    except ImportError:  # the particle reader is optional here: read the one column with starfile
        import starfile

        if not path.is_file():
            raise InputError(path, None, "file not found") from None
        data = starfile.read(path, always_dict=True)
        table = data.get("particles", next(iter(data.values())))
        if "afmClassName" not in table.columns:
            raise InputError(path, "afmClassName", "a column of class names") from None
        labels = table["afmClassName"].fillna("").astype(str)
        numbers = table["rlnClassNumber"] if "rlnClassNumber" in table.columns else np.zeros(len(table))
    else:
        table = read_particles(path)
        labels, numbers = table["afmClassName"].astype(str), table["rlnClassNumber"]
    first: dict[str, int] = {}
    for name, number in zip(labels, numbers):
        if name.strip() and name not in first:
            first[name] = int(number)
    if not first:
        raise InputError(path, "afmClassName", "at least one labelled particle (non-empty class name)")
    return sorted(first, key=lambda n: (first[n], n))


def run(args: argparse.Namespace) -> int:
    from affinitomo.io.similarity import read_similarity, write_similarity
    from affinitomo.similarity import compute_similarity, plot_similarity

    classes = list(args.classes) if args.classes else (classes_from_table(args.classes_from) if args.classes_from else None)
    if args.matrix:
        names, matrix = read_similarity(args.matrix, classes)
        log.info("read %d x %d similarity matrix from %s", len(names), len(names), args.matrix)
    else:
        result = compute_similarity(
            args.templates, score=args.score, resolution=args.resolution, angular_step=args.angular_step,
            voxel_size=args.voxel_size, input_voxel_size=args.input_voxel_size, scale=args.scale,
            classes=classes, device=args.device,
        )
        names, matrix = result.names, result.matrix
        log.info("computed %d x %d %s similarity matrix in %.1f s", len(names), len(names), args.score, result.seconds)
    write_similarity(args.out, names, matrix)
    if args.plot:
        plot_similarity(args.plot, names, matrix)
    log.info("wrote %s%s", args.out, f" and {args.plot}" if args.plot else "")
    return 0
