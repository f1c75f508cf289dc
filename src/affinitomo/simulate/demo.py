"""The embedded demo: pseudo-protein phantoms, two small tomograms, no downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from affinitomo.errors import InputError
from affinitomo.simulate.dataset import SimClass, simulate_dataset, validate_common
from affinitomo.simulate.imaging import DEFAULT_SNR, Imaging
from affinitomo.simulate.phantoms import DEFAULT_HELD_OUT, demo_phantoms, render_phantom

DEMO_SHAPE = (128, 384, 384)
DEMO_PER_CLASS = 35
DEMO_TOMOGRAMS = 2
DEMO_BOX = 32
DEMO_VOXEL_SIZE = 10.0


def demo_classes(box: int = DEMO_BOX, voxel_size: float = DEMO_VOXEL_SIZE, held_out: Sequence[str] = (DEFAULT_HELD_OUT,)) -> list[SimClass]:
    """The demo phantoms rendered at ``voxel_size`` Å in ``box``-voxel cubes; ``held_out`` ones unknown."""
    phantoms = demo_phantoms()
    names = [p.name for p in phantoms]
    unknown = sorted(set(held_out) - set(names))
    if unknown:
        raise InputError(None, "held-out", f"demo class names among {names}, got {unknown}")
    return [SimClass(p.name, render_phantom(p, box, voxel_size), p.name not in held_out) for p in phantoms]


def simulate_demo(
    out: str | Path,
    *,
    seed: int = 0,
    n_tomograms: int = DEMO_TOMOGRAMS,
    shape: Sequence[int] = DEMO_SHAPE,
    per_class: int = DEMO_PER_CLASS,
    held_out: Sequence[str] = (DEFAULT_HELD_OUT,),
    labelled_fraction: float = 0.5,
    box: int = DEMO_BOX,
    voxel_size: float = DEMO_VOXEL_SIZE,
    imaging: Imaging | None = None,
    progress: bool = True,
) -> dict:
    """Write the demo data set to ``out`` (layout in docs/architecture.md); returns the summary.

    Defaults: 10 phantom classes (one held out: ``tripod``), 2 tomograms of
    128 x 384 x 384 voxels at 10 Å, 35 particles per class per tomogram, every
    particle box fully inside the tomogram, missing wedge +-60 degrees about Y,
    Gaussian noise at SNR 0.2, bright protein.
    """
    if box < 8 or box % 2:
        raise InputError(None, "box", f"an even box of at least 8 voxels, got {box}")
    imaging = imaging or Imaging(mode="wedge", snr=DEFAULT_SNR, contrast="bright")
    imaging.validate()
    validate_common(shape, per_class, n_tomograms, voxel_size, labelled_fraction)
    return simulate_dataset(
        out,
        demo_classes(box, voxel_size, held_out),
        shape=shape,
        per_class=per_class,
        n_tomograms=n_tomograms,
        voxel_size=voxel_size,
        imaging=imaging,
        labelled_fraction=labelled_fraction,
        seed=seed,
        whole_box_inside=True,
        progress=progress,
        extra_metadata={"source": "demo phantoms"},
    )
