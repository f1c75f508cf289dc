"""Template matching at given coordinates: best template, NCC score and pose per particle.

A baseline for every benchmark and a tool in itself: templates are filtered like the data
(the tomograms' CTF when given, working-resolution low-pass, missing wedge of the tomogram
frame applied to the rotated template), searched over an SO(3) grid on half-size maps
(binned, or the central crop for small templates) then refined locally at full size
(:mod:`.search`), and particles scoring below a percentile of the labelled particles' own
scores are called 'unknown' (:mod:`.assign`).
"""

from affinitomo.match.assign import UNKNOWN, assign, unknown_threshold
from affinitomo.match.pipeline import MatchOptions, MatchResult, match_particles
from affinitomo.match.scores import read_scores, write_scores
from affinitomo.match.search import SearchOptions, SearchResult, match_stack
from affinitomo.match.templates import load_templates

__all__ = [
    "UNKNOWN", "MatchOptions", "MatchResult", "SearchOptions", "SearchResult", "assign", "load_templates",
    "match_particles", "match_stack", "read_scores", "unknown_threshold", "write_scores",
]
