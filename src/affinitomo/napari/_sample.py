"""npe2 sample data: a small synthetic results folder, generated in code (no download)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from affinitomo.napari.demo import write_demo_results
from affinitomo.napari.layers import LayerData, session_layers
from affinitomo.napari.session import load_session


def make_demo_sample() -> list[LayerData]:
    """A 48x160x160 tomogram at 10 Å with 60 particles of four shapes (one held out as 'unknown').

    The files go to a fresh temporary folder, so the session can save an edited table beside them.
    """
    folder = Path(tempfile.mkdtemp(prefix="affinitomo-demo-"))
    return session_layers(load_session(write_demo_results(folder)))
