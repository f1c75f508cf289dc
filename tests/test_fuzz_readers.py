"""Property-based tests of the readers of user files: STAR, CSV and copick JSON particle tables,
MRC and TIFF volumes, similarity CSVs. Random bytes and random tables are either read or refused
with an InputError naming the file, never another exception; valid tables round-trip exactly."""

from __future__ import annotations

import io
import json
import string
import tempfile
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import tifffile
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from affinitomo.errors import InputError
from affinitomo.io.particles import read_particles, write_particles
from affinitomo.io.similarity import read_similarity, write_similarity
from affinitomo.io.volumes import open_volume, write_volume

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Cells and column names that the readers meet in real files, and the ones that break parsers.
CELLS = ["1", "2.5", "-3", "0", "1e30", "1e400", "-1e400", "nan", "NaN", "inf", "NA", "null", "None", "True", "x",
         "a b", '""', '"', "'", "01", "1,5", "0x1f", "#", "\u00c5", ""]
STAR_COLUMNS = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnTomoName", "rlnOpticsGroup",
                "rlnTomoTiltSeriesPixelSize", "rlnImagePixelSize", "afmParticleId", "afmClassName", "afmPixelSize",
                "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnClassNumber", "rlnCenteredCoordinateXAngst",
                "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst", "rlnMicrographName",
                "rlnOpticsGroupName", "other"]
CSV_COLUMNS = ["x", "y", "z", "X", "class", "Class", "tomo", "tomogram", "rlnTomoName", "id", "particle_id",
               "pixel_size", "rot", "tilt", "psi", "rlnCoordinateX", "afmParticleId", "rlnClassNumber", "other", ""]


def _write(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return path


def _refused_or_read(reader, path: Path) -> None:
    """``reader(path)`` either returns or raises an InputError that names ``path``."""
    try:
        reader(path)
    except InputError as exc:
        assert exc.path is not None and str(path) in str(exc), str(exc)


cells = st.sampled_from(CELLS) | st.floats().map(repr) | st.integers(-2**70, 2**70).map(str)


@st.composite
def tables(draw, columns: list[str], sep: str, min_columns: int = 0) -> str:
    """A header of (possibly repeated) column names and rows of random cells."""
    header = draw(st.lists(st.sampled_from(columns), min_size=min_columns, max_size=8))
    rows = draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header) + 1), max_size=5))
    return "\n".join([sep.join(header)] + [sep.join(row) for row in rows]) + "\n"


@st.composite
def star_files(draw) -> str:
    """Blocks (optics, particles, or unnamed) of loops or key-value pairs of STAR columns."""
    blocks = []
    for name in draw(st.lists(st.sampled_from(["optics", "particles", "", "other"]), max_size=3)):
        if draw(st.booleans()):
            header = draw(st.lists(st.sampled_from(STAR_COLUMNS), min_size=1, max_size=8))
            rows = draw(st.lists(st.lists(cells.filter(lambda c: c.strip() and " " not in c), min_size=len(header),
                                          max_size=len(header)), max_size=4))
            body = "loop_\n" + "".join(f"_{c}\n" for c in header) + "".join(" ".join(r) + "\n" for r in rows)
        else:
            pairs = draw(st.lists(st.tuples(st.sampled_from(STAR_COLUMNS), cells.filter(str.strip)), max_size=5))
            body = "".join(f"_{k} {v}\n" for k, v in pairs)
        blocks.append(f"data_{name}\n\n{body}\n")
    return "".join(blocks)


def junk(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Random bytes, and text shaped like the format (as bytes)."""
    return st.binary(max_size=300) | text.map(lambda t: t.encode("utf-8", "surrogatepass"))


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


# --------------------------------------------------------------------------- particle tables


@SETTINGS
@given(content=junk(star_files()), options=st.sampled_from([{}, {"pixel_size": 2.0}, {"default_tomo": "t"}]))
def test_star_bytes_give_input_error_only(folder, content, options):
    _refused_or_read(lambda p: read_particles(p, **options), _write(folder, "p.star", content))


@SETTINGS
@given(data=st.data(), suffix=st.sampled_from([".csv", ".tsv", ".txt"]),
       options=st.sampled_from([{}, {"pixel_size": 2.0}, {"default_tomo": "t"}]))
def test_csv_bytes_give_input_error_only(folder, data, suffix, options):
    content = data.draw(junk(tables(CSV_COLUMNS, "\t" if suffix == ".tsv" else ",")))
    _refused_or_read(lambda p: read_particles(p, **options), _write(folder, f"p{suffix}", content))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)
coordinate = st.floats(-1e4, 1e4) | st.integers(-10**4, 10**4) | json_values
copick_points = st.lists(st.fixed_dictionaries(
    {"location": st.fixed_dictionaries({"x": coordinate, "y": coordinate, "z": coordinate}) | json_values},
    optional={"transformation_": json_values | st.just(np.eye(4).tolist()), "score": json_values,
              "instance_id": json_values}), max_size=4)
copick_docs = st.fixed_dictionaries({"points": copick_points | json_values},
                                    optional={"run_name": json_values, "pickable_object_name": json_values})


@SETTINGS
@given(doc=copick_docs | json_values)
def test_copick_documents_give_input_error_only(folder, doc):
    text = json.dumps(doc, allow_nan=True)
    _refused_or_read(lambda p: read_particles(p, pixel_size=10.0, default_tomo="t"), _write(folder, "p.json", text))


@SETTINGS
@given(content=st.binary(max_size=300))
def test_copick_bytes_give_input_error_only(folder, content):
    _refused_or_read(lambda p: read_particles(p, pixel_size=10.0), _write(folder, "p.json", content))


#: Names that look like other values. Names a STAR file cannot keep ("nan", a leading "_", quotes,
#: "#") are refused by write_particles (tests/test_bad_inputs.py).
names = st.sampled_from(["NA", "null", "None", "True", "01", "1e5", "TS_01", "a_b", "-1"]) | st.text(
    alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=8).filter(
        lambda n: n not in ("nan", "NaN") and not n.startswith("_"))
finite = st.floats(-1e5, 1e5, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3))


@st.composite
def canonical_tables(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 12))
    col = lambda strategy: draw(st.lists(strategy, min_size=n, max_size=n))  # noqa: E731
    return pd.DataFrame({
        "rlnTomoName": col(names), "rlnCoordinateX": col(finite), "rlnCoordinateY": col(finite),
        "rlnCoordinateZ": col(finite), "rlnAngleRot": col(finite), "rlnAngleTilt": col(finite),
        "rlnAnglePsi": col(finite), "afmClassName": col(st.sampled_from(["", "ribo", "a b", "x-1"])),
        "afmPixelSize": col(st.sampled_from([1.5, 3.0, 10.52])),
        "afmParticleId": draw(st.lists(st.integers(0, 10**9), min_size=n, max_size=n, unique=True)),
    })


@SETTINGS
@given(table=canonical_tables())
def test_star_round_trip_is_exact(folder, table):
    first = read_particles(write_particles(folder / "in.star", table))
    again = read_particles(write_particles(folder / "again.star", first))
    pd.testing.assert_frame_equal(first, again)
    for col in table.columns:
        expected = table[col].to_numpy()
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(first[col].to_numpy(float), expected, rtol=0, atol=5e-7)
        else:
            assert first[col].astype(str).tolist() == [str(v) for v in expected], col


@SETTINGS
@given(table=canonical_tables())
def test_csv_round_trip_is_exact(folder, table):
    path = folder / "in.csv"
    csv = table.rename(columns={"rlnCoordinateX": "x", "rlnCoordinateY": "y", "rlnCoordinateZ": "z",
                                "rlnTomoName": "tomo", "afmParticleId": "id"})
    csv.to_csv(path, index=False)
    back = read_particles(path)
    for col in ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnAngleRot", "afmPixelSize"):
        np.testing.assert_array_equal(back[col].to_numpy(float), table[col].to_numpy(float))
    assert back["rlnTomoName"].tolist() == table["rlnTomoName"].tolist()
    assert back["afmParticleId"].tolist() == table["afmParticleId"].tolist()
    assert back["afmClassName"].tolist() == table["afmClassName"].tolist()


# --------------------------------------------------------------------------- volumes


def _mrc_bytes(data: np.ndarray, voxel: float) -> bytes:
    buffer = io.BytesIO()
    with tempfile.NamedTemporaryFile(suffix=".mrc") as tmp:
        with mrcfile.new(tmp.name, overwrite=True) as mrc:
            mrc.set_data(data)
            mrc.voxel_size = voxel
        buffer.write(Path(tmp.name).read_bytes())
    return buffer.getvalue()


MRC_HEADER = _mrc_bytes(np.zeros((2, 3, 4), np.float32), 5.0)


@st.composite
def damaged_mrc(draw) -> bytes:
    """A valid MRC with bytes changed, cut off or added: header fields and data size disagree."""
    raw = bytearray(MRC_HEADER)
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(raw) - 1))
        raw[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(raw)))
    return bytes(raw[:cut]) + draw(st.binary(max_size=64))


@SETTINGS
@given(content=st.binary(max_size=1200) | damaged_mrc(), suffix=st.sampled_from([".mrc", ".rec", ".map"]))
def test_mrc_bytes_give_input_error_only(folder, content, suffix):
    path = _write(folder, f"v{suffix}", content)
    try:
        data, _ = open_volume(path)
    except InputError as exc:
        assert str(path) in str(exc)
        return
    # Read: the header accounts for exactly the data bytes, so the voxels are where it says.
    assert data.ndim == 3 and 1024 + data.nbytes <= len(content)


@SETTINGS
@given(content=st.binary(max_size=600), suffix=st.sampled_from([".tif", ".tiff"]))
def test_tiff_bytes_give_input_error_only(folder, content, suffix):
    _refused_or_read(open_volume, _write(folder, f"v{suffix}", content))
    for prefix in (b"II*\x00", b"MM\x00*"):  # past the magic number, into the tag parser
        _refused_or_read(open_volume, _write(folder, f"w{suffix}", prefix + content))


volumes = hnp.arrays(np.float32, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6),
                     elements=st.floats(-1e6, 1e6, width=32))


@SETTINGS
@given(data=volumes, voxel=st.sampled_from([1.0, 2.5, 10.52]))
def test_volume_round_trip_is_exact(folder, data, voxel):
    back, size = open_volume(write_volume(folder / "v.mrc", data, voxel))
    np.testing.assert_array_equal(np.asarray(back), data)
    assert size == pytest.approx(voxel, rel=1e-6)
    tifffile.imwrite(folder / "v.tif", data, photometric="minisblack")
    np.testing.assert_array_equal(np.asarray(open_volume(folder / "v.tif")[0]), data)


# --------------------------------------------------------------------------- similarity matrices


@SETTINGS
@given(content=junk(tables(["a", "b", "c", "", "Unnamed: 0", "a "], ",")))
def test_similarity_bytes_give_input_error_only(folder, content):
    path = _write(folder, "m.csv", content)
    _refused_or_read(read_similarity, path)
    _refused_or_read(lambda p: read_similarity(p, classes=["a", "b"]), path)


@st.composite
def similarity_matrices(draw) -> tuple[list[str], np.ndarray]:
    n = draw(st.integers(1, 6))
    labels = draw(st.lists(names, min_size=n, max_size=n, unique=True))
    upper = draw(hnp.arrays(np.float64, (n, n), elements=st.floats(-1, 1).map(lambda v: round(v, 6))))
    matrix = np.triu(upper, 1)
    matrix = matrix + matrix.T
    np.fill_diagonal(matrix, 1.0)
    return labels, matrix


@SETTINGS
@given(case=similarity_matrices())
def test_similarity_round_trip_is_exact(folder, case):
    labels, matrix = case
    assume(all(not n.startswith("Unnamed") for n in labels))
    back_names, back = read_similarity(write_similarity(folder / "m.csv", labels, matrix))
    assert back_names == labels
    np.testing.assert_array_equal(back, matrix)
