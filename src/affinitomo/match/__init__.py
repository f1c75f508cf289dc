"""Template matching at given coordinates: best template, NCC score and pose per particle.

A baseline for every benchmark and a tool in itself: templates are filtered like the data
(the tomograms' CTF when given, working-resolution low-pass, missing wedge of the tomogram
frame applied to the rotated template), searched over an SO(3) grid on half-size maps
(binned, or the central crop for small templates) then refined locally at full size
(:mod:`affinitomo.search.stack`), and particles scoring below a percentile of the labelled particles' own
scores are called 'unknown' (:mod:`.assign`).
"""

from affinitomo.match.assign import assign, unknown_threshold
from affinitomo.match.pipeline import MatchResult, match_particles
from affinitomo.match.settings import MatchOptions

__all__ = ["MatchOptions", "MatchResult", "assign", "match_particles", "unknown_threshold"]
