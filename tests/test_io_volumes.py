"""Voxel sizes from MRC headers and TIFF ImageJ metadata; a given voxel size versus the file's."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile

from affinitomo.io.volumes import open_volume, read_volume, tiff_voxel_size, write_volume


def _imagej_tiff(path, size: float | None, unit: str | None, spacing: float | None = None):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    meta = {}
    if unit is not None:
        meta["unit"] = unit
    if spacing is not None:
        meta["spacing"] = spacing
    kwargs = {"resolution": (1 / size, 1 / size)} if size else {}
    tifffile.imwrite(path, data, imagej=True, metadata=meta, **kwargs)
    return data


@pytest.mark.parametrize(("size", "unit", "expected"), [
    (1.052, "nm", 10.52), (0.002, "micron", 20.0), (0.002, "\\u00B5m", 20.0), (7.5, "A", 7.5),
])
def test_tiff_voxel_size_from_imagej_resolution(tmp_path, size, unit, expected):
    path = tmp_path / "v.tif"
    data = _imagej_tiff(path, size, unit)
    vol, vs = open_volume(path)
    assert vol.shape == data.shape
    assert vs == pytest.approx(expected, rel=1e-4)


def test_tiff_voxel_size_from_spacing_when_no_resolution(tmp_path):
    path = tmp_path / "v.tif"
    _imagej_tiff(path, None, "nm", spacing=0.8)
    assert tiff_voxel_size(path) == pytest.approx(8.0)


def test_tiff_without_length_unit_has_no_voxel_size(tmp_path):
    path = tmp_path / "v.tif"
    _imagej_tiff(path, 2.0, "pixel")
    assert open_volume(path)[1] is None
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((3, 4, 5), np.uint8), photometric="minisblack")
    assert open_volume(plain)[1] is None
    assert open_volume(plain, voxel_size=3.0)[1] == 3.0


def test_real_microtubule_tiff_voxel_size(shared_data):
    vol, vs = open_volume(shared_data / "real" / "13pf_MT.tif")
    assert vol.ndim == 3
    assert vs == pytest.approx(10.52, rel=1e-3)


def test_given_voxel_size_wins_over_differing_mrc_header_with_warning(tmp_path, caplog):
    path = write_volume(tmp_path / "v.mrc", np.zeros((4, 4, 4), np.float32), 10.0)
    with caplog.at_level(logging.WARNING, logger="affinitomo.io.volumes"):
        assert open_volume(path)[1] == pytest.approx(10.0)
        assert not caplog.records
        assert open_volume(path, voxel_size=10.05)[1] == pytest.approx(10.05)  # within 1%: silent
        assert not caplog.records
        assert read_volume(path, voxel_size=5.0)[1] == pytest.approx(5.0)
    assert len(caplog.records) == 1
    msg = caplog.records[0].getMessage()
    assert "v.mrc" in msg and "5" in msg and "10" in msg


def test_given_voxel_size_wins_over_differing_tiff_metadata_with_warning(tmp_path, caplog):
    path = tmp_path / "v.tif"
    _imagej_tiff(path, 1.052, "nm")
    with caplog.at_level(logging.WARNING, logger="affinitomo.io.volumes"):
        assert open_volume(path, voxel_size=21.04)[1] == pytest.approx(21.04)
    assert any("differs" in r.getMessage() for r in caplog.records)


def test_mrc_without_header_voxel_size_takes_given(tmp_path, caplog):
    path = write_volume(tmp_path / "v.mrc", np.zeros((4, 4, 4), np.float32), None)
    with caplog.at_level(logging.WARNING, logger="affinitomo.io.volumes"):
        assert open_volume(path)[1] is None
        assert open_volume(path, voxel_size=4.2)[1] == pytest.approx(4.2)
    assert not caplog.records
