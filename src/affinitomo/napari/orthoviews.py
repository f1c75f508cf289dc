"""Matplotlib drawing of one particle: XY/XZ/YZ slices of its subtomogram and of its class average."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from affinitomo.napari.contrast import contrast_limits
from affinitomo.napari.particle_view import orthogonal_slices

PLANES = ("XY", "XZ", "YZ")


def draw_particle(figure: Figure, subtomogram: np.ndarray | None, average: np.ndarray | None,
                  title: str = "particle", average_title: str = "class average") -> None:
    """Redraw ``figure`` as a 2x3 grid: the particle's slices on top, the average's below.

    Each volume gets its own 1-99 percentile contrast; a missing volume is said, not drawn.
    """
    figure.clear()
    axes = figure.subplots(2, 3)
    for r, (vol, label) in enumerate(((subtomogram, title), (average, average_title))):
        if vol is None:
            for ax in axes[r]:
                ax.set_axis_off()
            axes[r, 1].text(0.5, 0.5, f"{label}: not available", ha="center", va="center", fontsize=8,
                            transform=axes[r, 1].transAxes)
            continue
        low, high = contrast_limits(vol)
        for ax, image, plane in zip(axes[r], orthogonal_slices(vol), PLANES):
            ax.imshow(image, cmap="gray", vmin=low, vmax=high, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label} {plane}" if plane == "XY" else plane, fontsize=7)
