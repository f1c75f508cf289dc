"""``affinitomo view RESULTS_DIR [--tomograms DIR]``: open a results folder in napari with the review widget."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, help="results folder (with particles.star) or a particles .star file")
    parser.add_argument("--tomograms", type=Path, default=None,
                        help="folder of tomograms named <rlnTomoName>.mrc (default: run.json, then ./tomograms)")
    parser.add_argument("--diameter", type=float, default=None,
                        help="particle diameter in Å for the point size (default: run.json, else estimated)")
    parser.add_argument("--lowpass", type=float, default=None, metavar="SIGMA_A",
                        help="Gaussian low-pass of the tomogram, sigma in Å (reads the tomogram into memory)")


def run(args: argparse.Namespace) -> int:
    try:
        import napari
    except ImportError:
        print("affinitomo view: napari is not installed; pip install 'affinitomo[napari]'")
        return 1
    from affinitomo.napari.viewer import open_viewer

    open_viewer(args.results, tomograms_dir=args.tomograms, diameter=args.diameter, lowpass_angstrom=args.lowpass)
    napari.run()
    return 0
