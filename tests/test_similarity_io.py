"""Reading, validating, selecting and writing similarity matrices; the --matrix CLI."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import starfile

from affinitomo.cli import main
from affinitomo.cli.similarity import classes_from_table
from affinitomo.errors import InputError
from affinitomo.io.similarity import read_similarity, validate_similarity, write_similarity

NAMES = ["a", "b", "c"]
GOOD = np.array([[1.0, 0.2, -0.5], [0.2, 1.0, 0.7], [-0.5, 0.7, 1.0]])


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def matrix_csv(path: Path, names: list[str], matrix: np.ndarray, index: bool = False) -> Path:
    lines = [("," if index else "") + ",".join(names)]
    for name, row in zip(names, matrix):
        lines.append((f"{name}," if index else "") + ",".join(repr(float(v)) for v in row))
    return write_text(path, "\n".join(lines) + "\n")


def test_reference_matrix_reads_and_is_symmetrised(shared_data: Path, caplog):
    path = shared_data / "affinity-vae" / "affinity_fsc_10.csv"
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    with caplog.at_level(logging.WARNING):
        names, matrix = read_similarity(path)
    assert len(names) == 53 and matrix.shape == (53, 53)
    assert np.allclose(matrix, matrix.T) and np.allclose(np.diag(matrix), 1)
    assert np.allclose(matrix, (raw + raw.T) / 2)
    assert "not symmetric" in caplog.text and "0.166" in caplog.text


def test_reference_classes_select_and_order(shared_data: Path):
    path = shared_data / "affinity-vae" / "affinity_fsc_10.csv"
    classes = (shared_data / "affinity-vae" / "classes.csv").read_text().strip().split(",")
    all_names, full = read_similarity(path)
    names, matrix = read_similarity(path, classes[::-1])
    assert names == classes[::-1]
    idx = [all_names.index(c) for c in names]
    assert np.array_equal(matrix, full[np.ix_(idx, idx)])


def test_round_trip_and_index_column(tmp_path: Path):
    out = write_similarity(tmp_path / "m.csv", NAMES, GOOD)
    assert out.read_text().splitlines()[0] == "a,b,c"
    names, matrix = read_similarity(out)
    assert names == NAMES and np.allclose(matrix, GOOD)
    indexed = matrix_csv(tmp_path / "i.csv", NAMES, GOOD, index=True)
    names, matrix = read_similarity(indexed, ["c", "a"])
    assert names == ["c", "a"] and np.allclose(matrix, [[1.0, -0.5], [-0.5, 1.0]])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_small_asymmetry_averaged(tmp_path: Path, caplog):
    m = GOOD.copy()
    m[0, 1] = 0.3
    with caplog.at_level(logging.WARNING):
        out = validate_similarity(NAMES, m, "x.csv")
    assert out[0, 1] == out[1, 0] == pytest.approx(0.25)
    assert "max |A - A^T| = 0.1" in caplog.text


@pytest.mark.parametrize(
    "text, field, words",
    [
        ("a,b,c\n1,0,0\n0,1,0\n", "rows", "square"),
        ("a,b\n1,0,0\n0,1,0\n", "row 2", "square"),
        ("a,a\n1,0\n0,1\n", "header", "duplicated: a"),
        ("a,b\n1,nan\nnan,1\n", "a,b", "finite"),
        ("a,b\n1,1.5\n1.5,1\n", "a,b", "[-1, 1]"),
        ("a,b\n0.9,0\n0,1\n", "a,a", "diagonal"),
        ("a,b\n1,x\n0,1\n", "row 2, column 2", "a number"),
        ("", "header", "header"),
        (",a,b\na,1,0\nc,0,1\n", "row 3", "row name 'b'"),
    ],
)
def test_bad_matrices(tmp_path: Path, text: str, field: str, words: str):
    path = write_text(tmp_path / "bad.csv", text)
    with pytest.raises(InputError) as err:
        read_similarity(path)
    assert err.value.field == field and words in str(err.value) and str(path) in str(err.value)


def test_missing_class_named(tmp_path: Path):
    path = matrix_csv(tmp_path / "m.csv", NAMES, GOOD)
    with pytest.raises(InputError, match="missing: zz"):
        read_similarity(path, ["a", "zz"])
    with pytest.raises(InputError, match="file not found"):
        read_similarity(tmp_path / "absent.csv")


def test_write_rejects_bad_matrix_and_leaves_nothing(tmp_path: Path):
    with pytest.raises(InputError, match="diagonal"):
        write_similarity(tmp_path / "m.csv", NAMES, GOOD * 0.5)
    assert list(tmp_path.iterdir()) == []


def _star(path: Path, names: list[str]) -> Path:
    import pandas as pd

    df = pd.DataFrame({
        "rlnTomoName": "t1", "rlnCoordinateX": np.arange(len(names), dtype=float),
        "rlnCoordinateY": 1.0, "rlnCoordinateZ": 2.0, "afmClassName": names,
    })
    starfile.write({"particles": df}, path)
    return path


def test_cli_matrix_select_and_classes_from(tmp_path: Path):
    given = matrix_csv(tmp_path / "given.csv", NAMES, GOOD)
    out, png = tmp_path / "out.csv", tmp_path / "sim.png"
    assert main(["similarity", "--matrix", str(given), "--out", str(out), "--classes", "c", "b", "--plot", str(png)]) == 0
    names, matrix = read_similarity(out)
    assert names == ["c", "b"] and matrix[0, 1] == pytest.approx(0.7)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    star = _star(tmp_path / "p.star", ["c", "", "a", "c"])
    assert sorted(classes_from_table(star)) == ["a", "c"]
    assert main(["similarity", "--matrix", str(given), "--out", str(out), "--classes-from", str(star)]) == 0
    assert sorted(read_similarity(out)[0]) == ["a", "c"]


def test_cli_bad_input_exit_2_nothing_written(tmp_path: Path, capsys):
    given = matrix_csv(tmp_path / "given.csv", NAMES, GOOD)
    out = tmp_path / "out.csv"
    assert main(["similarity", "--matrix", str(given), "--out", str(out), "--classes", "a", "nope"]) == 2
    assert "missing: nope" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["given.csv"]
