"""Matplotlib drawing of one particle: XY/XZ/YZ slices of several volumes, one row each."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from affinitomo.napari.contrast import contrast_limits
from affinitomo.napari.particle_view import orthogonal_slices

PLANES = ("XY", "XZ", "YZ")


def draw_particle(figure: Figure, panels: list[tuple[np.ndarray | None, str]]) -> None:
    """Redraw ``figure`` as one row of three slices per ``(volume, label)`` panel.

    Each volume gets its own 1-99 percentile contrast; a missing volume (None) shows its
    label, which should say why it is missing.
    """
    figure.clear()
    axes = np.atleast_2d(figure.subplots(len(panels), 3))
    for r, (vol, label) in enumerate(panels):
        if vol is None:
            for ax in axes[r]:
                ax.set_axis_off()
            axes[r, 1].text(0.5, 0.5, label, ha="center", va="center", fontsize=7, transform=axes[r, 1].transAxes)
            continue
        low, high = contrast_limits(vol)
        for ax, image, plane in zip(axes[r], orthogonal_slices(vol), PLANES):
            ax.imshow(image, cmap="gray", vmin=low, vmax=high, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label} {plane}" if plane == "XY" else plane, fontsize=7)
