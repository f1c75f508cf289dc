"""npe2 sample data: one small demo tomogram simulated in code (no download)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from affinitomo.napari.demo import write_demo_results
from affinitomo.napari.layers import LayerData, session_layers
from affinitomo.napari.session import load_session


def make_demo_sample() -> list[LayerData]:
    """The package's demo simulator at 64x192x192 voxels of 10 Å, 5 particles of each of its 10
    classes (one held out: called 'unknown', in its own unknown group), with synthetic cluster
    results (about 1 s).

    The files go to a fresh temporary folder, so the session can save an edited table beside them.
    """
    folder = Path(tempfile.mkdtemp(prefix="affinitomo-demo-"))
    return session_layers(load_session(write_demo_results(folder)))
