"""Reference-free particle picking: DoG blob detection in Z slabs, greedy NMS, STAR output."""

from affinitomo.pick.blobs import DEFAULT_THRESHOLD, PickSettings, ids_from_names, pick_tomogram, pick_tomograms
from affinitomo.pick.evaluate import match_picks, pick_metrics

__all__ = ["DEFAULT_THRESHOLD", "PickSettings", "ids_from_names", "match_picks", "pick_metrics", "pick_tomogram", "pick_tomograms"]
