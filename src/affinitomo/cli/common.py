"""Arguments that several verbs share (not a verb itself)."""

from __future__ import annotations

import argparse


def add_trust_pickle(parser: argparse.ArgumentParser, what: str) -> None:
    """``--trust-pickle``: the one way to read a model file of the older pickle format; ``what`` it allows."""
    parser.add_argument("--trust-pickle", action="store_true",
                        help="read a pickle of the older file format; a pickle can run code when it is loaded, so "
                             f"give this only for files you wrote yourself: {what}")
