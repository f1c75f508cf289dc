"""Reference-free particle picking: DoG blob detection in Z slabs, greedy NMS, STAR output."""

from affinitomo.pick.blobs import DEFAULT_THRESHOLD, PickSettings, pick_tomogram
from affinitomo.pick.evaluate import match_picks, pick_metrics
from affinitomo.pick.tomograms import ids_from_names, pick_tomograms

__all__ = ["DEFAULT_THRESHOLD", "PickSettings", "ids_from_names", "match_picks", "pick_metrics", "pick_tomogram", "pick_tomograms"]
