"""``match.json``: the settings a match ran with (search, CTF on the templates, open-set rule).

The match stage writes it beside ``scores.csv``. A classifier fitted on template scores is only
valid for scores made the same way, so ``affinitomo apply`` and the workflow's ``apply.from``
read it back (:func:`read_settings`) and match new particles exactly as the trained run did:
same working resolution, angular step, missing wedge and CTF. Without it (a run made before the
file existed) they fall back to the options given, with a warning.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from affinitomo.density.ctf import CtfParameters
from affinitomo.errors import InputError
from affinitomo.search.stack import SearchOptions

log = logging.getLogger(__name__)

NAME = "match.json"


def write_settings(out_dir: str | Path, options: Any, templates: str | Path) -> Path:
    """Write ``out_dir/match.json`` for a :class:`MatchOptions`, atomically."""
    from affinitomo.io.atomic import atomic_path

    search = asdict(options.search)
    search["wedge"] = None if options.search.wedge is None else list(options.search.wedge)
    record = {"templates": str(templates), "search": search,
              "ctf": None if options.ctf is None else asdict(options.ctf),
              "unknown_percentile": options.unknown_percentile, "per_class_threshold": options.per_class_threshold}
    path = Path(out_dir) / NAME
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1))
    return path


def read_settings(path: str | Path, device: str = "auto") -> Any:
    """The :class:`MatchOptions` recorded in a ``match.json`` (InputError
    naming the file and the field when it is not one)."""
    from affinitomo.options import from_known_keys, load_json

    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "the match settings of an earlier run (match.json, not found)")
    record = load_json(path.read_text(), path)
    for key in ("search", "ctf", "unknown_percentile", "per_class_threshold"):
        if not isinstance(record, dict) or key not in record:
            raise InputError(path, key, "a field of affinitomo match's match.json")
    search = dict(record["search"]) if isinstance(record["search"], dict) else record["search"]
    if isinstance(search, dict) and isinstance(search.get("wedge"), list):
        search["wedge"] = tuple(search["wedge"])
    try:
        options = MatchOptions(from_known_keys(SearchOptions, search, path, "a search setting"),
                               ctf=None if record["ctf"] is None else
                               from_known_keys(CtfParameters, record["ctf"], path, "a CTF parameter"),
                               unknown_percentile=float(record["unknown_percentile"]),
                               per_class_threshold=bool(record["per_class_threshold"]), device=device)
    except (TypeError, ValueError) as exc:
        raise InputError(path, "search", f"the settings of affinitomo match ({exc})") from None
    if options.ctf is not None:
        options.ctf.validate()
    return options


def recorded_settings(run_dir: str | Path) -> Path | None:
    """The ``match.json`` of an earlier run's results folder (the first tomogram's; they are alike), or None."""
    found = sorted(Path(run_dir, "match").glob(f"**/{NAME}"))
    return found[0] if found else None


@dataclass
class MatchOptions:
    """Search settings, the tomograms' CTF (None: not weighted), the open-set rule and the device ('auto', 'cpu', 'cuda')."""

    search: SearchOptions = field(default_factory=SearchOptions)
    ctf: CtfParameters | None = None
    unknown_percentile: float = 5.0
    per_class_threshold: bool = True
    device: str = "auto"
