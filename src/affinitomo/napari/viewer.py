"""Open a review session in a napari viewer (used by ``affinitomo view``, tests and the benchmark)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from affinitomo.napari.layers import session_layers
from affinitomo.napari.session import ReviewSession, load_session

if TYPE_CHECKING:
    import napari

    from affinitomo.napari._widget import ReviewWidget


def show_session(viewer: "napari.Viewer", session: ReviewSession,
                 lowpass_angstrom: float | None = None) -> "ReviewWidget":
    """Add the session's layers and the review dock widget to ``viewer``; returns the widget."""
    from affinitomo.napari._widget import ReviewWidget

    for data, kwargs, kind in session_layers(session, lowpass_angstrom):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget, name="affinitomo review", area="right")
    return widget


def open_viewer(results: str | Path, *, tomograms_dir: str | Path | None = None, diameter: float | None = None,
                lowpass_angstrom: float | None = None, show: bool = True) -> tuple["napari.Viewer", "ReviewWidget"]:
    """A new napari viewer showing a results folder (or particles STAR file) with the review widget."""
    import napari

    session = load_session(results, tomograms_dir=tomograms_dir, diameter=diameter)
    viewer = napari.Viewer(title=f"affinitomo: {results}", show=show)
    return viewer, show_session(viewer, session, lowpass_angstrom)
