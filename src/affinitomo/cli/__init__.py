"""Command line: ``affinitomo <verb> [options]``, one verb per pipeline stage.

Each verb lives in ``affinitomo.cli.<verb>`` as a module with
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only
when their verb is called, so ``affinitomo --help`` stays fast.

Errors are one line on stderr, ``affinitomo <verb>: error: <path>: <what>``, without a
traceback: bad input (:class:`~affinitomo.errors.InputError`) exits with status 2, a file
that cannot be written (read-only folder, a path under a file, a full disk) with status 1.
Outputs are written through :func:`affinitomo.io.atomic.atomic_path`, so such a failure
leaves no half-written file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from affinitomo import __version__
from affinitomo.errors import InputError

VERBS: dict[str, str] = {
    "pick": "Pick particles in tomograms without a reference (band-pass + difference of Gaussians).",
    "simulate": "Simulate a demo or template-based data set: tomograms, ground truth, templates.",
    "extract": "Extract subtomograms at particle coordinates into a memory-mappable stack.",
    "import-subtomograms": "Import subtomograms extracted elsewhere (RELION STAR or a folder of MRC files) as a stack.",
    "similarity": "Compute a protein-similarity matrix from templates, or validate a given CSV.",
    "references": "Build one reference per known class from its labelled particles (no template needed).",
    "match": "Classify particles by template matching (baseline): best template, score and pose.",
    "gather": "Gather per-tomogram particle tables and latents into one particle set.",
    "train": "Train an Affinity-VAE on labelled subtomograms and a similarity matrix.",
    "encode": "Encode every subtomogram with a trained model: latent means, variances, poses.",
    "embed": "Fit (or apply) a UMAP embedding of the latents.",
    "cluster": "Classify known classes with an open-set 'unknown' and group the particles (results/cluster/).",
    "average": "Align the groups of 'cluster' in 3-D: final poses, particles.star and the class averages.",
    "report": "Metrics, plots and run.json of a results folder of 'cluster' and 'average'.",
    "apply": "Classify new tomograms with a trained run's model, UMAP and classifier (no retraining).",
    "view": "Open a results folder in napari.",
    "copick": "Read particles and tomograms from a copick project (import), or write results back as picks (export).",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="affinitomo", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"affinitomo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, help_text in VERBS.items():
        sub.add_parser(verb, help=help_text, description=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Find the verb, then build only its parser (imports happen lazily).
    verb = next((a for a in argv if not a.startswith("-")), None)
    if verb not in VERBS:
        args = parser.parse_args(argv)
        parser.print_help()
        return 0 if args.verb is None and not argv else 2
    module = importlib.import_module(f"affinitomo.cli.{verb.replace('-', '_')}")
    verb_parser = argparse.ArgumentParser(prog=f"affinitomo {verb}", description=VERBS[verb])
    verb_parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    module.add_arguments(verb_parser)
    rest = argv[:]
    rest.remove(verb)
    args = verb_parser.parse_args(rest)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(module.run(args) or 0)
    except InputError as exc:
        return fail(verb, str(exc), 2)
    except OSError as exc:  # an unwritable --out, a full disk: the path and the reason, no traceback
        reason = exc.strerror or str(exc)
        return fail(verb, f"{exc.filename}: {reason}" if exc.filename else reason, 1)


def fail(verb: str, message: str, status: int) -> int:
    """Print the one line ``affinitomo <verb>: error: <message>`` to stderr; return ``status``."""
    print(f"affinitomo {verb}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
