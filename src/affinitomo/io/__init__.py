"""File formats: volumes (MRC/TIFF), particle tables (STAR/CSV/copick), atomic writes."""

from affinitomo.io.atomic import atomic_path
from affinitomo.io.particles import read_particles, write_particles
from affinitomo.io.volumes import open_volume, read_volume, write_volume

__all__ = ["atomic_path", "open_volume", "read_particles", "read_volume", "write_particles", "write_volume"]
