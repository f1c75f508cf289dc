"""``affinitomo copick import|export``: particles and tomograms from a copick project, results back as picks.

``import`` writes ``OUT/particles.star`` (the canonical table) and ``OUT/tomograms/<run>.copick``
(tomogram references that ``affinitomo extract --tomograms OUT/tomograms/*.copick`` opens lazily).
``export`` writes a results table (``results/particles.star``) into the project as picks of user
``affinitomo``: one object per known class and per unknown group.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = actions.add_parser("import", help="picks and tomograms of a copick project -> particles.star + tomograms/")
    imp.add_argument("--config", required=True, type=Path, metavar="FILE", help="the copick project's config.json")
    imp.add_argument("--object", nargs="+", default=None, metavar="NAME",
                     help="pickable objects to read (default: every particle object)")
    imp.add_argument("--user", nargs="+", default=None, metavar="ID", help="picks of these user ids only")
    imp.add_argument("--session", nargs="+", default=None, metavar="ID", help="picks of these session ids only")
    imp.add_argument("--runs", nargs="+", default=None, metavar="NAME", help="runs to read (default: every run with picks)")
    imp.add_argument("--voxel-spacing", required=True, type=float, metavar="Å",
                     help="voxel spacing of the tomograms; the pixel size of the coordinates")
    imp.add_argument("--tomo-type", default="wbp", metavar="TYPE", help="tomogram type (default wbp)")
    imp.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    exp = actions.add_parser("export", help="a results particles.star -> copick picks (user affinitomo)")
    exp.add_argument("--config", required=True, type=Path, metavar="FILE", help="the copick project's config.json")
    exp.add_argument("--particles", required=True, type=Path, metavar="FILE",
                     help="results table (the cluster stage's particles.star)")
    exp.add_argument("--session", default="0", metavar="ID", help="session id of the picks written (default 0)")
    exp.add_argument("--pixel-size", type=float, default=None, help="Å per pixel where the table gives none")
    exp.add_argument("--summary", type=Path, default=None, metavar="FILE",
                     help="write {run: {object: count}} as JSON here")


def run(args: argparse.Namespace) -> int:
    from affinitomo.io import copick_project as project

    if args.action == "import":
        plan = project.plan_import(args.config, objects=args.object, user_id=args.user, session_id=args.session,
                                   runs=args.runs, voxel_spacing=args.voxel_spacing, tomo_type=args.tomo_type)
        particles, references = project.import_project(plan, args.tomo_type, args.out)
        log.info("wrote %s and %d tomogram references in %s", particles, len(references), args.out / "tomograms")
        return 0
    from affinitomo.io.atomic import atomic_path
    from affinitomo.io.particles import read_particles

    table = read_particles(args.particles, pixel_size=args.pixel_size)
    written = project.export_picks(args.config, table, session_id=args.session, source=args.particles,
                                   pixel_size=args.pixel_size)
    total = sum(sum(c.values()) for c in written.values())
    log.info("wrote %d picks in %d runs to %s (user %s, session %s)", total, len(written), args.config,
             project.EXPORT_USER, args.session)
    if args.summary is not None:
        with atomic_path(args.summary) as tmp:
            tmp.write_text(json.dumps(written, indent=2, sort_keys=True) + "\n")
    return 0
