"""RELION conventions in and out: origin shifts, subtomogram orientations, optics and other blocks,
centred coordinates in every table, coordinates of unbinned tilt series on binned tomograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile
from scipy.spatial.transform import Rotation

from affinitomo.cli import main
from affinitomo.errors import InputError
from affinitomo.io.particles import read_particles, write_particles
from affinitomo.io.volumes import write_volume

SHAPES = {"TS_01": (100, 200, 300)}  # nz, ny, nx

RELION4 = """
# version 30001

data_optics

loop_
_rlnOpticsGroup #1
_rlnOpticsGroupName #2
_rlnVoltage #3
_rlnSphericalAberration #4
_rlnAmplitudeContrast #5
_rlnTomoTiltSeriesPixelSize #6
1 optics1 300.0 2.7 0.1 10.0

# version 30001

data_particles

loop_
_rlnTomoName #1
_rlnCoordinateX #2
_rlnCoordinateY #3
_rlnCoordinateZ #4
_rlnAngleRot #5
_rlnAngleTilt #6
_rlnAnglePsi #7
_rlnOriginXAngst #8
_rlnOriginYAngst #9
_rlnOriginZAngst #10
_rlnOpticsGroup #11
TS_01 100.0 50.0 40.0 10.0 20.0 30.0 30.0 -20.0 0.0 1
TS_01 120.0 60.0 20.0 0.0 0.0 0.0 0.0 0.0 0.0 1
"""

RELION5 = """
# version 50001

data_general

_rlnTomoSubTomosAre2DStacks                       1

# version 50001

data_optics

loop_
_rlnVoltage #1
_rlnSphericalAberration #2
_rlnAmplitudeContrast #3
_rlnTomoTiltSeriesPixelSize #4
_rlnOpticsGroup #5
_rlnOpticsGroupName #6
_rlnImageDimensionality #7
_rlnTomoSubtomogramBinning #8
_rlnImagePixelSize #9
_rlnImageSize #10
300.0 2.7 0.1 5.0 1 optics1 2 2.0 10.0 64

# version 50001

data_particles

loop_
_rlnTomoName #1
_rlnTomoSubtomogramRot #2
_rlnTomoSubtomogramTilt #3
_rlnTomoSubtomogramPsi #4
_rlnAngleRot #5
_rlnAngleTilt #6
_rlnAnglePsi #7
_rlnOpticsGroup #8
_rlnTomoParticleName #9
_rlnOriginXAngst #10
_rlnOriginYAngst #11
_rlnOriginZAngst #12
_rlnCenteredCoordinateXAngst #13
_rlnCenteredCoordinateYAngst #14
_rlnCenteredCoordinateZAngst #15
TS_01 30.0 60.0 -45.0 10.0 20.0 30.0 1 TS_01/1 30.0 0.0 0.0 0.0 0.0 0.0
TS_01 0.0 0.0 0.0 0.0 90.0 0.0 1 TS_01/2 30.0 0.0 -10.0 100.0 -200.0 50.0
TS_01 90.0 0.0 0.0 0.0 0.0 0.0 1 TS_01/3 30.0 0.0 0.0 0.0 0.0 0.0
"""


def _star(tmp_path: Path, text: str, name: str = "in.star") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _relion_euler_matrix(rot: float, tilt: float, psi: float) -> np.ndarray:
    """RELION's Euler_angles2matrix (src/euler.cpp), written out."""
    a, b, g = np.radians([rot, tilt, psi])
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.array([[cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
                     [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
                     [sc, ss, cb]])


def _scipy_matrix(angles) -> np.ndarray:
    return Rotation.from_euler("ZYZ", angles, degrees=True).inv().as_matrix()


# --------------------------------------------------------------------------- origin shifts


def test_relion4_origin_in_angstrom_is_folded_into_the_coordinate(tmp_path):
    df = read_particles(_star(tmp_path, RELION4))
    # coordinate 100 px, pixel 10 Å, origin 30 Å -> 97 px (RELION: centre = coordinate - origin)
    np.testing.assert_allclose(df[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].iloc[0], [97.0, 52.0, 40.0])
    np.testing.assert_allclose(df["rlnCoordinateX"].iloc[1], 120.0)
    assert (df[["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]] == 0).all().all()
    out = write_particles(tmp_path / "out.star", df)
    written = starfile.read(out, always_dict=True)["particles"]
    assert (written[["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]] == 0).all().all()
    again = read_particles(out)  # no second shift
    np.testing.assert_allclose(again["rlnCoordinateX"], [97.0, 120.0])


def test_relion3_origin_in_pixels(tmp_path):
    text = RELION4.replace("_rlnOriginXAngst", "_rlnOriginX").replace("_rlnOriginYAngst", "_rlnOriginY") \
                  .replace("_rlnOriginZAngst", "_rlnOriginZ").replace("30.0 -20.0 0.0 1", "3.0 -2.0 0.5 1")
    df = read_particles(_star(tmp_path, text))
    np.testing.assert_allclose(df[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].iloc[0], [97.0, 52.0, 39.5])
    assert (df[["rlnOriginX", "rlnOriginY", "rlnOriginZ"]] == 0).all().all()


def test_relion5_origin_taken_off_the_centred_coordinate(tmp_path):
    df = read_particles(_star(tmp_path, RELION5), tomogram_shapes=SHAPES, pixel_size=10.0)
    # row 1 has no subtomogram rotation: x = (100 - 30) / 10 + 300 / 2 = 157, z = (50 + 10) / 10 + 50 = 56
    np.testing.assert_allclose(df[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].iloc[1], [157.0, 80.0, 56.0])
    np.testing.assert_allclose(df[["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
                                   "rlnCenteredCoordinateZAngst"]].iloc[1], [70.0, -200.0, 60.0])
    # row 2: the 30 Å origin along x of a box rotated by rot = 90 lies along RELION's A @ (30, 0, 0) = (0, -30, 0)
    shift = _relion_euler_matrix(90.0, 0.0, 0.0) @ [30.0, 0.0, 0.0]
    np.testing.assert_allclose(df[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].iloc[2],
                               np.array([150.0, 100.0, 50.0]) - shift / 10.0, atol=1e-9)
    assert (df[["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]] == 0).all().all()


# --------------------------------------------------------------------------- orientations


def test_subtomogram_orientation_is_composed_as_relion_does(tmp_path):
    df = read_particles(_star(tmp_path, RELION5), tomogram_shapes=SHAPES, pixel_size=10.0)
    sub, ang = [30.0, 60.0, -45.0], [10.0, 20.0, 30.0]
    # RELION: A = A_subtomogram @ A_particle, each RELION's Euler matrix (= scipy's ZYZ, inverted)
    np.testing.assert_allclose(_relion_euler_matrix(*sub), _scipy_matrix(sub), atol=1e-12)
    expected = (Rotation.from_euler("ZYZ", sub, degrees=True).inv()
                * Rotation.from_euler("ZYZ", ang, degrees=True).inv()).as_matrix()
    np.testing.assert_allclose(expected, _relion_euler_matrix(*sub) @ _relion_euler_matrix(*ang), atol=1e-12)
    got = _scipy_matrix(df[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].iloc[0].to_numpy(float))
    np.testing.assert_allclose(got, expected, atol=1e-9)
    np.testing.assert_allclose(df[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].iloc[1], [0.0, 90.0, 0.0], atol=1e-9)
    subtomo = ["rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi"]
    assert (df[subtomo] == 0).all().all()
    back = read_particles(write_particles(tmp_path / "out.star", df))  # composed once only
    np.testing.assert_allclose(_scipy_matrix(back[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].iloc[0].to_numpy(float)),
                               expected, atol=1e-5)


# --------------------------------------------------------------------------- blocks


def test_optics_and_general_blocks_round_trip_without_losing_a_column(tmp_path):
    src = _star(tmp_path, RELION5)
    blocks_in = starfile.read(src, always_dict=True)
    df = read_particles(src, tomogram_shapes=SHAPES, pixel_size=10.0)
    out = write_particles(tmp_path / "out.star", df)
    blocks_out = starfile.read(out, always_dict=True)
    assert list(blocks_out) == ["general", "optics", "particles"]
    assert blocks_out["general"] == blocks_in["general"]
    for name in blocks_in:
        cols_in = blocks_in[name].keys() if isinstance(blocks_in[name], dict) else blocks_in[name].columns
        cols_out = blocks_out[name].keys() if isinstance(blocks_out[name], dict) else blocks_out[name].columns
        assert set(cols_in) <= set(cols_out), (name, set(cols_in) - set(cols_out))
    optics = blocks_out["optics"].iloc[0]
    assert optics["rlnTomoTiltSeriesPixelSize"] == 5.0  # the input's tilt-series pixel, kept
    assert optics["rlnImagePixelSize"] == 10.0  # the tomogram's pixel
    assert optics["rlnOpticsGroupName"] == "optics1" and optics["rlnVoltage"] == 300.0
    assert optics["rlnAmplitudeContrast"] == 0.1 and optics["rlnImageSize"] == 64
    again = write_particles(tmp_path / "again.star", read_particles(out))
    twice = starfile.read(again, always_dict=True)
    assert list(twice) == list(blocks_out) and twice["general"] == blocks_out["general"]
    pd.testing.assert_frame_equal(twice["optics"], blocks_out["optics"])
    assert list(twice["particles"].columns) == list(blocks_out["particles"].columns)


# --------------------------------------------------------------------------- centred coordinates


def test_written_tables_carry_centred_coordinates(tmp_path):
    df = read_particles(_star(tmp_path, RELION4), tomogram_shapes=SHAPES)
    assert df[["afmTomoSizeX", "afmTomoSizeY", "afmTomoSizeZ"]].iloc[0].tolist() == [300.0, 200.0, 100.0]
    df.loc[1, "rlnCoordinateX"] = 10.0  # a later stage moves a particle: the centred columns follow
    written = starfile.read(write_particles(tmp_path / "out.star", df), always_dict=True)["particles"]
    sizes = np.array([300.0, 200.0, 100.0])
    for axis, size in zip("XYZ", sizes):
        np.testing.assert_allclose(written[f"rlnCenteredCoordinate{axis}Angst"],
                                   (written[f"rlnCoordinate{axis}"] - size / 2) * 10.0, atol=1e-5)
    assert written["rlnCenteredCoordinateXAngst"].iloc[1] == pytest.approx((10.0 - 150.0) * 10.0)
    assert written["rlnCoordinateX"].iloc[0] == pytest.approx(97.0)


# --------------------------------------------------------------------------- binned tomograms


def test_tilt_series_coordinates_are_rescaled_to_a_binned_tomogram(tmp_path):
    text = RELION4.replace("0.1 10.0", "0.1 5.0")  # coordinates in 5 Å tilt-series pixels
    df = read_particles(_star(tmp_path, text), pixel_size=10.0, tomogram_shapes={"TS_01": (50, 100, 150)})
    # origin 30 Å = 6 tilt-series pixels: (100 - 6) / 2 = 47
    np.testing.assert_allclose(df["rlnCoordinateX"], [47.0, 60.0])
    np.testing.assert_allclose(df["rlnCoordinateY"], [(50.0 + 4.0) / 2, 30.0])
    assert (df["afmPixelSize"] == 10.0).all()
    np.testing.assert_allclose(df["rlnCenteredCoordinateXAngst"], [(47.0 - 75.0) * 10.0, (60.0 - 75.0) * 10.0])
    same = read_particles(_star(tmp_path, text, "same.star"), pixel_size=5.0)  # unbinned: nothing to rescale
    np.testing.assert_allclose(same["rlnCoordinateX"], [94.0, 120.0])


def test_coordinate_pixel_size_option(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("x,y,z,tomo\n100,50,40,TS_01\n")
    df = read_particles(csv, pixel_size=10.0, coordinate_pixel_size=5.0)
    assert df[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].iloc[0].tolist() == [50.0, 25.0, 20.0]
    assert df["afmPixelSize"].iloc[0] == 10.0
    plain = read_particles(csv, coordinate_pixel_size=5.0)  # no tomogram pixel given: kept as is
    assert plain["rlnCoordinateX"].iloc[0] == 100.0 and plain["afmPixelSize"].iloc[0] == 5.0


@pytest.mark.parametrize("how", ["optics", "option"])
def test_extract_cli_halves_tilt_series_coordinates_on_a_binned_tomogram(tmp_path, how):
    vol = np.random.default_rng(1).normal(size=(40, 50, 60)).astype(np.float32)
    tomo = tmp_path / "TS_01.mrc"
    write_volume(tomo, vol, 10.0)  # binned x2: 10 Å voxels, table in 5 Å pixels
    if how == "optics":
        table = _star(tmp_path, RELION4.replace("0.1 10.0", "0.1 5.0").replace("30.0 -20.0 0.0 1", "0.0 0.0 0.0 1")
                      .replace("TS_01 120.0 60.0 20.0", "TS_01 60.0 40.0 30.0"))
        extra = []
    else:
        table = tmp_path / "p.csv"
        table.write_text("x,y,z,tomo\n100,50,40,TS_01\n60,40,30,TS_01\n")
        extra = ["--coordinate-pixel-size", "5"]
    rc = main(["extract", "--particles", str(table), "--tomograms", str(tomo), "--box", "8",
               "--out", str(tmp_path / "o"), *extra])
    assert rc == 0
    out = read_particles(tmp_path / "o" / "particles.star")
    np.testing.assert_allclose(out["rlnCoordinateX"], [50.0, 30.0])
    np.testing.assert_allclose(out["rlnCoordinateY"], [25.0, 20.0])
    assert (out["afmPixelSize"] == 10.0).all()
    assert out[["afmTomoSizeX", "afmTomoSizeY", "afmTomoSizeZ"]].iloc[0].tolist() == [60.0, 50.0, 40.0]
    np.testing.assert_allclose(out["rlnCenteredCoordinateXAngst"], [(50.0 - 30.0) * 10.0, 0.0])
    if how == "optics":
        optics = starfile.read(tmp_path / "o" / "particles.star", always_dict=True)["optics"].iloc[0]
        assert optics["rlnTomoTiltSeriesPixelSize"] == 5.0 and optics["rlnVoltage"] == 300.0


def test_extract_with_binning_keeps_the_centred_coordinates_in_angstrom(tmp_path):
    vol = np.random.default_rng(2).normal(size=(40, 50, 60)).astype(np.float32)
    tomo = tmp_path / "TS_01.mrc"
    write_volume(tomo, vol, 5.0)
    table = tmp_path / "p.csv"
    table.write_text("x,y,z,tomo\n41,20,25,TS_01\n")
    assert main(["extract", "--particles", str(table), "--tomograms", str(tomo), "--box", "8", "--binning", "2",
                 "--out", str(tmp_path / "o")]) == 0
    out = read_particles(tmp_path / "o" / "particles.star")
    assert out["rlnCoordinateX"].iloc[0] == 20.5 and out["afmPixelSize"].iloc[0] == 10.0
    np.testing.assert_allclose(out[["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
                                    "rlnCenteredCoordinateZAngst"]].iloc[0], [(41 - 30) * 5.0, (20 - 25) * 5.0, (25 - 20) * 5.0])


# --------------------------------------------------------------------------- bad input


def test_non_numeric_origin_names_the_column(tmp_path):
    with pytest.raises(InputError) as err:
        read_particles(_star(tmp_path, RELION4.replace("30.0 -20.0 0.0 1", "30.0 abc 0.0 1")))
    assert err.value.field == "rlnOriginYAngst"


def test_origin_in_angstrom_without_pixel_size_names_the_column(tmp_path):
    text = RELION4.split("data_particles")[1]
    with pytest.raises(InputError) as err:
        read_particles(_star(tmp_path, "data_particles" + text))
    assert err.value.field == "rlnOriginXAngst" and "pixel size" in str(err.value)
    zero = "data_particles" + text.replace("30.0 -20.0 0.0 1", "0.0 0.0 0.0 1")
    assert read_particles(_star(tmp_path, zero, "zero.star"))["rlnCoordinateX"].iloc[0] == 100.0  # nothing to convert


def test_both_kinds_of_origin_is_an_error(tmp_path):
    df = pd.DataFrame({"rlnTomoName": ["t"], "rlnCoordinateX": [1.0], "rlnCoordinateY": [1.0], "rlnCoordinateZ": [1.0],
                       "rlnOriginX": [1.0], "rlnOriginY": [0.0], "rlnOriginZ": [0.0], "rlnOriginXAngst": [1.0],
                       "rlnOriginYAngst": [0.0], "rlnOriginZAngst": [0.0]})
    starfile.write(df, tmp_path / "both.star")
    with pytest.raises(InputError) as err:
        read_particles(tmp_path / "both.star", pixel_size=1.0)
    assert err.value.field == "rlnOriginX"


def test_non_numeric_subtomogram_angle_names_the_column(tmp_path):
    with pytest.raises(InputError) as err:
        read_particles(_star(tmp_path, RELION5.replace("TS_01 90.0 0.0 0.0", "TS_01 90.0 x 0.0")),
                       tomogram_shapes=SHAPES, pixel_size=10.0)
    assert err.value.field == "rlnTomoSubtomogramTilt"
