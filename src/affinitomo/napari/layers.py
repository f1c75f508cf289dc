"""napari layer data (LayerDataTuples) for a review session.

Every layer is scaled by its tomogram's pixel size and carries Å as its unit, so
image, points and vectors share one world frame in Å and napari's scale bar reads
true lengths. Layers carry ``metadata["affinitomo"]`` (the session) and
points/vectors ``metadata["rows"]`` (positions in the session's table).

Particles are outlines in their group's colour (the density inside stays visible);
a selected particle is filled in its colour with a yellow outline
(:func:`selection_colors`).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from affinitomo.napari.contrast import contrast_limits, lowpass
from affinitomo.napari.features import coordinates_zyx, pose_vectors
from affinitomo.napari.session import ReviewSession

LayerData = tuple[object, dict, str]
SELECTED_BORDER = np.array([1.0, 1.0, 0.0, 1.0], dtype=np.float32)  # yellow
SELECTED_FILL_ALPHA = 0.4
CLEAR = np.zeros(4, dtype=np.float32)
UNIT = "angstrom"


@cache
def _unit_kwargs() -> dict:
    """``units`` (Å on every axis) where the installed napari has layer units (0.6 and later)."""
    import inspect

    from napari.layers import Image

    return {"units": (UNIT,) * 3} if "units" in inspect.signature(Image.__init__).parameters else {}


def selection_colors(colors: np.ndarray, selected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(face, border) RGBA of particles with group ``colors``: outlines, the ``selected`` positions filled."""
    face = np.zeros_like(colors)
    face[selected] = colors[selected]
    face[selected, 3] = SELECTED_FILL_ALPHA
    border = colors.copy()
    border[selected] = SELECTED_BORDER
    return face, border


def image_layer(session: ReviewSession, tomo: str, lowpass_angstrom: float | None = None,
                visible: bool = True) -> LayerData | None:
    """The tomogram (memory-mapped unless low-passed) with percentile 1-99 contrast."""
    t = session.tomograms.get(tomo)
    if t is None or t.data is None:
        return None
    data = t.data
    if lowpass_angstrom:
        data = lowpass(data, lowpass_angstrom, t.pixel_size)
    kwargs = {
        "name": tomo,
        "scale": (t.pixel_size,) * 3,
        **_unit_kwargs(),
        "contrast_limits": contrast_limits(data),
        "colormap": "gray",
        "visible": visible,
        "metadata": {"affinitomo": session, "tomogram": tomo},
    }
    return data, kwargs, "image"


def points_layer(session: ReviewSession, tomo: str, visible: bool = True) -> LayerData:
    """The tomogram's particles: outlines of the particle diameter in their group's colour and symbol."""
    rows = session.rows_of(tomo)
    pixel = session.pixel_size(tomo)
    colors = session.colors(rows)
    kwargs = {
        "name": f"{tomo} particles",
        "scale": (pixel,) * 3,
        **_unit_kwargs(),
        "features": session.features(rows),
        "face_color": np.tile(CLEAR, (len(rows), 1)),
        "border_color": colors,
        "border_width": 0.12,
        "border_width_is_relative": True,
        "symbol": session.symbols(rows),
        "size": session.diameter / pixel,
        "projection_mode": "rescale_spherical",
        "opacity": 1.0,
        "visible": visible,
        "metadata": {"affinitomo": session, "tomogram": tomo, "rows": rows},
    }
    return coordinates_zyx(session.table.iloc[rows]), kwargs, "points"


def vectors_layer(session: ReviewSession, tomo: str, visible: bool = True) -> LayerData:
    """Poses as white vectors (visible on any class colour): each particle's rotated reference z axis,
    from the centre to 0.75 diameter, so it sticks out of the particle's disc."""
    rows = session.rows_of(tomo)
    pixel = session.pixel_size(tomo)
    kwargs = {
        "name": f"{tomo} poses",
        "scale": (pixel,) * 3,
        **_unit_kwargs(),
        "edge_color": "white",
        "edge_width": max(1.0, session.diameter / pixel / 8),
        "projection_mode": "all",
        "visible": visible,
        "metadata": {"affinitomo": session, "tomogram": tomo, "rows": rows},
    }
    return pose_vectors(session.table.iloc[rows], length=0.75 * session.diameter / pixel), kwargs, "vectors"


def session_layers(session: ReviewSession, lowpass_angstrom: float | None = None) -> list[LayerData]:
    """Image + points for every tomogram; only the first tomogram is visible."""
    layers: list[LayerData] = []
    for i, tomo in enumerate(session.tomogram_names()):
        image = image_layer(session, tomo, lowpass_angstrom, visible=i == 0)
        if image is not None:
            layers.append(image)
        layers.append(points_layer(session, tomo, visible=i == 0))
    return layers
