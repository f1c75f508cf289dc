"""Particle tables: RELION 4/5 STAR, CSV, copick JSON; canonical columns; round trip; bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import starfile

from affinitomo.errors import InputError
from affinitomo.geometry import euler_to_matrix
from affinitomo.io.particles import CANONICAL, pixel_to_centred, read_particles, write_particles


def _relion4(n: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "rlnTomoName": ["01"] * (n // 2) + ["TS_2"] * (n - n // 2),
            "rlnCoordinateX": rng.uniform(0, 100, n).round(3),
            "rlnCoordinateY": rng.uniform(0, 100, n).round(3),
            "rlnCoordinateZ": rng.uniform(0, 50, n).round(3),
            "rlnAngleRot": rng.uniform(-180, 180, n).round(3),
            "rlnAngleTilt": rng.uniform(0, 180, n).round(3),
            "rlnAnglePsi": rng.uniform(-180, 180, n).round(3),
            "rlnOpticsGroup": [1] * (n // 2) + [2] * (n - n // 2),
        }
    )


def test_relion4_single_block_gets_canonical_columns(tmp_path):
    path = tmp_path / "p.star"
    src = _relion4().drop(columns=["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOpticsGroup"])
    starfile.write(src, path)
    df = read_particles(path, pixel_size=7.5)
    assert list(df.columns[: len(CANONICAL)]) == CANONICAL
    assert df["rlnTomoName"].tolist() == src["rlnTomoName"].tolist()  # "01" stays a string
    np.testing.assert_allclose(df["rlnCoordinateX"], src["rlnCoordinateX"])
    assert (df[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]] == 0).all().all()
    assert (df["afmClassName"] == "").all() and (df["rlnClassNumber"] == 0).all()
    assert (df["afmPixelSize"] == 7.5).all()
    assert df["afmParticleId"].tolist() == list(range(len(df)))
    assert df.attrs["source"]["format"] == "relion4"


def test_relion4_multiblock_pixel_size_from_optics_groups(tmp_path):
    path = tmp_path / "p.star"
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1, 2], "rlnOpticsGroupName": ["a", "b"], "rlnTomoTiltSeriesPixelSize": [1.35, 2.7], "rlnVoltage": [300, 300]}
    )
    particles = _relion4()
    particles["rlnClassNumber"] = [1, 2, 2, 3]
    starfile.write({"optics": optics, "particles": particles}, path)
    df = read_particles(path)
    assert df["afmPixelSize"].tolist() == [1.35, 1.35, 2.7, 2.7]
    assert df["rlnClassNumber"].tolist() == [1, 2, 2, 3]
    assert (df["afmClassName"] == "").all()  # a RELION class number is not a protein label
    # the source optics block (voltage) is written back
    out = tmp_path / "out.star"
    write_particles(out, df)
    assert starfile.read(out)["optics"]["rlnVoltage"].tolist() == [300, 300]


def test_pixel_size_from_per_particle_column_and_argument_conflict(tmp_path):
    path = tmp_path / "p.star"
    src = _relion4()
    src["rlnImagePixelSize"] = 4.0
    starfile.write(src, path)
    assert (read_particles(path)["afmPixelSize"] == 4.0).all()
    assert (read_particles(path, pixel_size=4.02)["afmPixelSize"] == 4.0).all()  # within 1%
    with pytest.raises(InputError, match="afmPixelSize.*5 Å.*4 Å"):
        read_particles(path, pixel_size=5.0)


def test_round_trip_write_read(tmp_path):
    df = read_particles(_write_star(tmp_path / "in.star", _relion4(6)), pixel_size=3.0)
    df["afmClassName"] = ["ribo", "", "a b", "ribo", "", "x"]
    df["afmPixelSize"] = [3.0, 3.0, 3.0, 6.0, 6.0, 6.0]
    df["afmExtra"] = np.arange(6) * 0.5
    df["afmParticleId"] = [10, 11, 12, 20, 21, 22]
    path = write_particles(tmp_path / "out.star", df)
    back = read_particles(path)
    pd.testing.assert_frame_equal(back, df, check_exact=False, atol=1e-6)
    # a table without rlnOpticsGroup gets one per pixel size, nothing else changes
    bare = df.drop(columns="rlnOpticsGroup")
    back = read_particles(write_particles(tmp_path / "bare.star", bare))
    pd.testing.assert_frame_equal(back.drop(columns="rlnOpticsGroup"), bare, check_exact=False, atol=1e-6)
    assert back["rlnOpticsGroup"].tolist() == [1, 1, 1, 2, 2, 2]
    blocks = starfile.read(path, always_dict=True)
    assert list(blocks) == ["optics", "particles"]


def _write_star(path, df):
    starfile.write(df, path)
    return path


@pytest.mark.parametrize("shape", [(50, 100, 120), (51, 101, 121)])
def test_relion5_centred_coordinates_round_trip(tmp_path, shape):
    nz, ny, nx = shape
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnTomoTiltSeriesPixelSize": [2.5]})
    centred = pd.DataFrame(
        {
            "rlnTomoName": ["t", "t"],
            "rlnCenteredCoordinateXAngst": [0.0, -25.0],
            "rlnCenteredCoordinateYAngst": [0.0, 10.0],
            "rlnCenteredCoordinateZAngst": [0.0, 5.0],
            "rlnOpticsGroup": [1, 1],
        }
    )
    path = tmp_path / "r5.star"
    starfile.write({"optics": optics, "particles": centred}, path)
    df = read_particles(path, tomogram_shapes={"t": shape})
    # RELION C++: x_px = x_A / pixel_size + size_x / 2
    np.testing.assert_allclose(df["rlnCoordinateX"], [nx / 2, -10 + nx / 2])
    np.testing.assert_allclose(df["rlnCoordinateY"], [ny / 2, 4 + ny / 2])
    np.testing.assert_allclose(df["rlnCoordinateZ"], [nz / 2, 2 + nz / 2])
    assert df.attrs["source"]["format"] == "relion5"
    back = pixel_to_centred(df, {"t": shape})
    np.testing.assert_allclose(back.to_numpy(), centred.iloc[:, 1:4].to_numpy(), atol=1e-9)
    # the source columns are kept, so a write keeps them too
    assert "rlnCenteredCoordinateXAngst" in read_particles(write_particles(tmp_path / "o.star", df)).columns


def test_relion5_needs_pixel_size_and_shapes(tmp_path):
    centred = pd.DataFrame(
        {"rlnTomoName": ["t"], "rlnCenteredCoordinateXAngst": [1.0], "rlnCenteredCoordinateYAngst": [1.0], "rlnCenteredCoordinateZAngst": [1.0]}
    )
    path = _write_star(tmp_path / "r5.star", centred)
    with pytest.raises(InputError, match="pixel size"):
        read_particles(path, tomogram_shapes={"t": (10, 10, 10)})
    with pytest.raises(InputError, match="tomogram shapes"):
        read_particles(path, pixel_size=2.0)
    with pytest.raises(InputError, match="no shape for \\['t'\\]"):
        read_particles(path, pixel_size=2.0, tomogram_shapes={"other": (10, 10, 10)})


def test_one_tomogram_of_a_relion5_table_keeps_whole_table_ids(tmp_path):
    """Per-tomogram jobs: only that tomogram's shape is needed, ids are those of the whole table."""
    centred = pd.DataFrame({"rlnTomoName": ["a", "b", "a", "b"], "rlnCenteredCoordinateXAngst": [0.0, 1.0, 2.0, 3.0],
                            "rlnCenteredCoordinateYAngst": 0.0, "rlnCenteredCoordinateZAngst": 0.0})
    path = _write_star(tmp_path / "r5.star", centred)
    b = read_particles(path, pixel_size=1.0, tomogram_shapes={"b": (10, 20, 30)}, only_tomo="b")
    assert b["afmParticleId"].tolist() == [1, 3] and b["rlnTomoName"].tolist() == ["b", "b"]
    np.testing.assert_allclose(b["rlnCoordinateX"], [16.0, 18.0])
    with pytest.raises(InputError, match="particles of tomogram 'c'.*\\['a', 'b'\\]"):
        read_particles(path, pixel_size=1.0, tomogram_shapes={"c": (10, 20, 30)}, only_tomo="c")


def test_csv_with_class_names_and_tomo(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("X, Y, Z, class, tomo\n1,2,3,ribo,01\n4,5,6,,01\n7,8,9,apo,02\n10,11,12,ribo,02\n")
    df = read_particles(path)
    assert df["rlnTomoName"].tolist() == ["01", "01", "02", "02"]
    assert df["afmClassName"].tolist() == ["ribo", "", "apo", "ribo"]
    assert df["rlnClassNumber"].tolist() == [2, 0, 1, 2]  # sorted names numbered from 1
    assert df["rlnCoordinateZ"].tolist() == [3.0, 6.0, 9.0, 12.0]
    assert df["afmPixelSize"].isna().all()


def test_csv_numeric_class_default_tomo_and_missing_tomo(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x,y,z,class\n1,2,3,1\n4,5,6,2\n")
    df = read_particles(path, default_tomo="tomoA", pixel_size=10.52)
    assert df["rlnClassNumber"].tolist() == [1, 2] and (df["afmClassName"] == "").all()
    assert (df["rlnTomoName"] == "tomoA").all() and (df["afmPixelSize"] == 10.52).all()
    with pytest.raises(InputError, match="rlnTomoName"):
        read_particles(path)


def test_micrograph_name_stands_in_for_tomo_name(tmp_path):
    src = _relion4(2).drop(columns="rlnTomoName")
    src["rlnMicrographName"] = ["TS_01.tomostar", "dir/TS_02.mrc"]
    df = read_particles(_write_star(tmp_path / "p.star", src))
    assert df["rlnTomoName"].tolist() == ["TS_01", "TS_02"]


def test_copick_picks(tmp_path):
    rot = euler_to_matrix(30.0, 60.0, -45.0)
    transform = np.eye(4)
    transform[:3, :3] = rot
    doc = {
        "pickable_object_name": "ribosome",
        "user_id": "me",
        "session_id": "0",
        "run_name": "TS_5",
        "points": [
            {"location": {"x": 100.0, "y": 200.0, "z": 50.0}, "transformation_": transform.tolist(), "instance_id": 0, "score": 1.0},
            {"location": {"x": 10.0, "y": 20.0, "z": 5.0}},
        ],
    }
    path = tmp_path / "picks.json"
    path.write_text(json.dumps(doc))
    df = read_particles(path, pixel_size=10.0)
    assert df["rlnCoordinateX"].tolist() == [10.0, 1.0]
    assert df["rlnCoordinateZ"].tolist() == [5.0, 0.5]
    assert df["rlnTomoName"].tolist() == ["TS_5", "TS_5"] and (df["afmClassName"] == "ribosome").all()
    got = euler_to_matrix(*df[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].iloc[0].to_numpy())
    np.testing.assert_allclose(got, rot, atol=1e-9)
    assert df.attrs["source"]["format"] == "copick"
    with pytest.raises(InputError, match="pixel size"):
        read_particles(path)
    path.write_text('{"points": [{"location": {"x": 1}}]}')
    with pytest.raises(InputError, match=r"points\[0\]\.location"):
        read_particles(path, pixel_size=1.0)


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_particles(tmp_path / "nope.star")


def test_unparsable_star_and_csv(tmp_path):
    bad = tmp_path / "bad.star"
    bad.write_bytes(b"\x00\xff garbage \x89PNG")
    with pytest.raises(InputError) as err:
        read_particles(bad)
    assert str(bad) in str(err.value)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text('x,y,z\n1,2,3\n4,"5\n')
    with pytest.raises(InputError):
        read_particles(bad_csv)


def test_no_coordinate_columns_names_the_expected_ones(tmp_path):
    path = _write_star(tmp_path / "p.star", pd.DataFrame({"rlnTomoName": ["a"], "rlnAngleRot": [1.0]}))
    with pytest.raises(InputError, match="rlnCoordinateX.*rlnCenteredCoordinateXAngst.*x, y, z"):
        read_particles(path)
    csv = tmp_path / "p.csv"
    csv.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match="field 'rlnCoordinateX'"):
        read_particles(csv)


def test_nan_coordinates_name_the_rows(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x,y,z,tomo\n1,2,3,a\n4,,6,a\n7,8,9,a\nnan,1,1,a\n")
    with pytest.raises(InputError, match=r"2 rows.*\[1, 3\]"):
        read_particles(path)
    path.write_text("x,y,z,tomo\n1,2,three,a\n")
    with pytest.raises(InputError, match="non-numeric"):
        read_particles(path)


def test_empty_tables(tmp_path):
    star = tmp_path / "e.star"
    star.write_text("data_particles\n\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n_rlnCoordinateZ\n_rlnTomoName\n")
    with pytest.raises(InputError, match="empty"):
        read_particles(star)
    csv = tmp_path / "e.csv"
    csv.write_text("x,y,z\n")
    with pytest.raises(InputError, match="empty"):
        read_particles(csv)
    (tmp_path / "z.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        read_particles(tmp_path / "z.csv")


def test_duplicate_ids_rejected(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x,y,z,tomo,id\n1,2,3,a,7\n4,5,6,a,7\n")
    with pytest.raises(InputError, match="afmParticleId.*unique"):
        read_particles(path)


def test_write_bad_table_leaves_nothing(tmp_path):
    with pytest.raises(InputError, match="rlnCoordinateX"):
        write_particles(tmp_path / "o.star", pd.DataFrame({"rlnTomoName": ["a"]}))
    assert list(tmp_path.iterdir()) == []
