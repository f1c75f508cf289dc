"""Per-tomogram outputs gathered into one particle set: tables, latents, stacks read as one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from affinitomo.errors import InputError
from affinitomo.gather import gather
from affinitomo.io.latents import read_latents
from affinitomo.io.particles import read_particles, write_particles
from affinitomo.io.stacks import open_stacks


def _tomogram(folder, name, ids, latent=3, box=4, rotation=False):
    folder.mkdir(parents=True)
    n = len(ids)
    table = pd.DataFrame({"rlnTomoName": name, "rlnCoordinateX": np.arange(n) + 10.0, "rlnCoordinateY": 5.0,
                          "rlnCoordinateZ": 7.0, "afmParticleId": ids, "afmPixelSize": 10.0})
    write_particles(folder / "particles.star", table)
    stack = np.stack([np.full((box,) * 3, i, np.float32) for i in ids])
    np.save(folder / "subtomos.npy", stack)
    order = np.argsort(ids)[::-1]  # latents in another order than the table: gather aligns them
    arrays = {"particle_id": np.asarray(ids)[order], "mu": np.asarray(ids, float)[order, None].repeat(latent, 1),
              "logvar": np.zeros((n, latent)), "pose": np.zeros((n, 1))}
    if rotation:
        arrays["rotation"] = np.repeat(np.eye(3)[None], n, 0)
    np.savez(folder / "latents.npz", **arrays)
    return folder


def test_gather_concatenates_tables_latents_and_reads_stacks_as_one(tmp_path):
    a = _tomogram(tmp_path / "a", "a", [0, 1, 2])
    b = _tomogram(tmp_path / "b", "b", [7, 5])
    out = gather([a / "particles.star", b / "particles.star"], tmp_path / "all.star",
                 [a / "latents.npz", b / "latents.npz"], tmp_path / "all.npz")
    table = read_particles(out["particles"])
    assert table["afmParticleId"].tolist() == [0, 1, 2, 7, 5]
    assert table["rlnTomoName"].tolist() == ["a"] * 3 + ["b"] * 2
    latents = read_latents(out["latents"])
    assert latents.particle_id.tolist() == [0, 1, 2, 7, 5]
    assert latents.mu[:, 0].tolist() == [0, 1, 2, 7, 5]
    stacks = open_stacks([a / "subtomos.npy", b / "subtomos.npy"], n_rows=len(table))
    assert stacks.shape == (5, 4, 4, 4)
    # Row i of the stacks is particle i of the gathered table, in any order asked for.
    rows = np.array([4, 0, 3, 2])
    assert stacks[rows][:, 0, 0, 0].tolist() == table["afmParticleId"].to_numpy()[rows].tolist()
    assert stacks[1].shape == (4, 4, 4) and stacks[3:5][:, 0, 0, 0].tolist() == [7, 5]


def test_gather_refuses_duplicate_ids_and_mismatched_latents(tmp_path):
    a = _tomogram(tmp_path / "a", "a", [0, 1])
    b = _tomogram(tmp_path / "b", "b", [1, 2])
    with pytest.raises(InputError, match="afmParticleId.*unique across"):
        gather([a / "particles.star", b / "particles.star"], tmp_path / "all.star")
    c = _tomogram(tmp_path / "c", "c", [5, 6], latent=4)
    with pytest.raises(InputError, match="one latent size"):
        gather([a / "particles.star", c / "particles.star"], tmp_path / "all.star",
               [a / "latents.npz", c / "latents.npz"], tmp_path / "all.npz")
    with pytest.raises(InputError, match="latents for every particle"):  # latents of another tomogram
        gather([a / "particles.star", c / "particles.star"], tmp_path / "all.star",
               [c / "latents.npz", a / "latents.npz"], tmp_path / "all.npz")
    assert not (tmp_path / "all.star").exists()  # nothing written on bad input


def test_stacks_with_other_boxes_or_rows_are_refused(tmp_path):
    a = _tomogram(tmp_path / "a", "a", [0, 1], box=4)
    b = _tomogram(tmp_path / "b", "b", [2], box=6)
    with pytest.raises(InputError, match="boxes of"):
        open_stacks([a / "subtomos.npy", b / "subtomos.npy"])
    with pytest.raises(InputError, match="3 subtomograms"):
        open_stacks(a / "subtomos.npy", n_rows=3)
