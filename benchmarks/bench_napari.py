"""Benchmark the napari review with many particles in one tomogram.

Measures, with N particles (default 100 000) in one 64x1024x1024 tomogram:
load (read the results folder, add image + points layers, build the widget and
its scatter), lasso select (a programmatic polygon over about half the particles,
pushed to the points layer, with the selection's makeup table), viewer -> scatter
selection, recolour (assign the selection to a new class: table, layer features,
face colours, scatter), a viewer canvas redraw, and the UMAP panel: a redraw of its
canvas, each colour-by change, a wheel zoom step, a pan step, reset view and the
confidence threshold (viewer and scatter). The load average is printed before and
after, since the figures depend on what else the machine runs. Run under a display:
``xvfb-run -a python benchmarks/bench_napari.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(label: str, func, results: dict, repeat: int = 1):
    best, value = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        value = func()
        best = min(best, time.perf_counter() - start)
    results[label] = round(best, 3)
    print(f"{label:38s} {best:8.3f} s", flush=True)
    return value


def time_scatter_panel(widget, results: dict) -> None:
    """The UMAP panel at its size in the window: redraw, colour by, zoom, pan, reset, threshold."""
    from qtpy.QtWidgets import QApplication

    panel = widget.scatter

    def drawn(func):
        def run():
            func()
            panel.canvas.draw()
            QApplication.processEvents()
        return run

    timed("scatter: canvas draw alone (no events)", panel.canvas.draw, results, repeat=3)
    timed("scatter: Qt events alone", QApplication.processEvents, results, repeat=3)
    timed("scatter: redraw of its canvas", drawn(lambda: None), results, repeat=3)
    for mode in ("cluster", "confidence", "tomogram", "class"):
        timed(f"scatter: colour by {mode}", drawn(lambda mode=mode: panel.color_by.setCurrentText(mode)), results)
    timed("scatter: zoom in one wheel step", drawn(lambda: panel.zoom(1.25)), results, repeat=3)
    timed("scatter: pan one step", drawn(lambda: panel.set_view(*(np.add(lim, 0.02 * np.ptp(lim)) for lim in (
        panel.ax.get_xlim(), panel.ax.get_ylim())))), results, repeat=3)
    timed("scatter: reset view", drawn(panel.reset_view), results, repeat=3)
    timed("threshold: hide confidence < 0.5", drawn(lambda: widget.set_min_confidence(0.5)), results)
    results["threshold_shown"] = int(len(panel._shown_rows))
    timed("threshold: back to 0", drawn(lambda: widget.set_min_confidence(0.0)), results)


def time_particle_panel(folder: Path, tomograms: Path | None, results: dict) -> None:
    """First click (loads the checkpoint) and later clicks on the one-particle panel."""
    import napari

    from affinitomo.napari.session import load_session
    from affinitomo.napari.viewer import show_session

    viewer = napari.Viewer(show=True)
    widget = show_session(viewer, load_session(folder, tomograms_dir=tomograms))
    results["panel_particles"] = len(widget.session.table)
    results["panel_checkpoint"] = str(widget.session.run_info.checkpoint)

    def click(row: int):
        widget.show_particle(row)
        widget.particle_canvas.draw()

    timed("particle panel, first click (loads model)", lambda: click(0), results)
    timed("particle panel, next clicks", lambda: click(1), results, repeat=3)
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=100_000)
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 1024, 1024), metavar=("Z", "Y", "X"))
    parser.add_argument("--json", type=Path, default=None, help="also write the timings here")
    parser.add_argument("--screenshot", type=Path, default=None, help="save a screenshot of the window (PNG)")
    parser.add_argument("--panel-results", type=Path, default=None,
                        help="also time the one-particle panel (subtomogram, model reconstruction, class average) "
                             "on this results folder, e.g. the demo workflow's results/")
    parser.add_argument("--panel-tomograms", type=Path, default=None, help="tomogram folder for --panel-results")
    args = parser.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    from affinitomo.napari.demo import write_synthetic_scale
    from affinitomo.napari.session import load_session
    from affinitomo.napari.viewer import show_session

    results: dict[str, float] = {"particles": args.particles, "load_average_before": os.getloadavg()}
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="affinitomo-bench-") as tmp:
        folder = timed("write synthetic results (not UI)", lambda: write_synthetic_scale(
            tmp, n_particles=args.particles, shape=tuple(args.shape)), results)
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1400, 900)

        def load():
            widget = show_session(viewer, load_session(folder))
            QApplication.processEvents()
            widget.scatter.canvas.draw()
            return widget

        widget = timed("load (table, layers, widget, scatter)", load, results)
        layer = widget.points_layers[0]
        xy = widget.scatter._view_xy
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        t = np.linspace(0, 2 * np.pi, 60)
        polygon = (lo + hi) / 2 + np.c_[np.cos(t), np.sin(t)] * (hi - lo) / 3

        def lasso():
            rows = widget.scatter.select_polygon(polygon)
            widget.scatter.canvas.draw()
            QApplication.processEvents()
            return rows

        rows = timed("lasso select (scatter -> viewer)", lasso, results, repeat=3)
        results["lasso_selected"] = int(len(rows))
        print(f"  selected {len(rows)} particles")
        small = xy[0] + np.c_[np.cos(t), np.sin(t)] * (hi - lo) / 25  # around one particle, inside a cluster
        small_rows = timed("lasso select, small polygon", lambda: (
            widget.scatter.select_polygon(small), widget.scatter.canvas.draw(), QApplication.processEvents())[0],
            results, repeat=3)
        results["small_lasso_selected"] = int(len(small_rows))
        print(f"  selected {len(small_rows)} particles (napari selection set: {len(layer.selected_data)})")
        subset = set(range(0, len(layer.data), 3))

        def from_viewer():
            layer.selected_data = subset
            widget.scatter.canvas.draw()
            QApplication.processEvents()

        timed("select in viewer (viewer -> scatter)", from_viewer, results, repeat=3)
        widget.select_rows(rows)

        def recolour():
            widget.assign_selected("bench_class")
            widget.scatter.canvas.draw()
            QApplication.processEvents()

        timed("recolour (assign class to selection)", recolour, results, repeat=3)
        timed("canvas redraw (screenshot)", lambda: viewer.screenshot(canvas_only=True, flash=False), results, 3)

        def density():
            widget.scatter.density.setChecked(not widget.scatter.density.isChecked())
            widget.scatter.canvas.draw()

        timed("toggle density view", density, results, repeat=2)
        time_scatter_panel(widget, results)
        if args.screenshot:
            from imageio.v3 import imwrite

            widget.scatter.select_polygon(polygon)
            imwrite(args.screenshot, viewer.screenshot(canvas_only=False, flash=False))
        viewer.close()
    if args.panel_results:
        time_particle_panel(args.panel_results, args.panel_tomograms, results)
    results["load_average_after"] = os.getloadavg()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
