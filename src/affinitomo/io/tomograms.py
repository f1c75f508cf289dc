"""Tomogram files: names (file stems) to paths, and their array shapes."""

from __future__ import annotations

from pathlib import Path

from affinitomo.errors import InputError
from affinitomo.io.volumes import open_volume


def find_tomograms(paths: list[str | Path]) -> dict[str, Path]:
    """Map tomogram names (file stems) to files, from files and folders (.mrc, .rec, .map, .tif, .tiff, .copick)."""
    from affinitomo.io.volumes import COPICK_SUFFIXES, MRC_SUFFIXES, TIFF_SUFFIXES

    suffixes = (MRC_SUFFIXES - {".mrcs", ".st", ".ali"}) | TIFF_SUFFIXES | COPICK_SUFFIXES
    found: dict[str, Path] = {}
    for entry in map(Path, paths):
        if entry.is_dir():
            files = sorted(p for p in entry.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            if not files:
                raise InputError(entry, None, f"a folder holding tomograms ({', '.join(sorted(suffixes))}), found none")
        elif entry.is_file():
            files = [entry]
        else:
            raise InputError(entry, None, "a tomogram file or a folder of tomograms (not found)")
        for f in files:
            if f.stem in found and found[f.stem] != f:
                raise InputError(f, "name", f"one tomogram per name; '{f.stem}' is also {found[f.stem]}")
            found[f.stem] = f
    return found


def tomogram_shapes(tomograms: dict[str, Path]) -> dict[str, tuple[int, int, int]]:
    """Array shapes ``(nz, ny, nx)`` of the tomograms (memory maps, nothing read)."""
    shapes = {}
    for name, path in tomograms.items():
        data, _ = open_volume(path)
        shapes[name] = tuple(int(s) for s in data.shape)
        del data
    return shapes
