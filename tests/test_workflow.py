"""The Snakemake workflow: config validation (fast) and the whole demo end to end (slow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(workdir: Path, configfile: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(configfile), *args]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def write_config(tmp_path: Path, **overrides) -> Path:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in overrides.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_dry_run_of_default_config(tmp_path):
    proc = snakemake(tmp_path, REPO / "config.yaml", "-n", "--cores", "1")
    for rule in ("simulate_demo", "extract", "similarity", "train", "encode", "embed", "cluster"):
        assert rule in proc.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"bogus_key": 1}, "'bogus_key' was unexpected"),
        ({"extract": {"box": "big"}}, "'big' is not of type 'integer'"),
        ({"similarity": {"score": "pearson"}}, "'pearson' is not one of"),
    ],
)
def test_bad_config_fails_at_once_with_clear_message(tmp_path, override, message):
    config = write_config(tmp_path, **override)
    proc = snakemake(tmp_path, config, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_own_data_config_wires_given_files(tmp_path):
    (tmp_path / "tomos").mkdir()
    for name in ("a", "b"):
        (tmp_path / "tomos" / f"{name}.mrc").write_bytes(b"")
    (tmp_path / "picks.star").write_text("")
    (tmp_path / "matrix.csv").write_text("")
    config = write_config(
        tmp_path,
        data={"particles": "picks.star", "tomograms": ["tomos/a.mrc", "tomos/b.mrc"], "truth": None},
        similarity={"matrix": "matrix.csv"},
    )
    proc = snakemake(tmp_path, config, "-n", "--cores", "1", "-p")
    assert "simulate_demo" not in proc.stdout
    assert "--particles picks.star --tomograms tomos/a.mrc tomos/b.mrc" in proc.stdout
    assert "affinitomo similarity --matrix matrix.csv" in proc.stdout


@pytest.mark.slow
def test_demo_end_to_end_then_nothing_to_do(tmp_path):
    """The whole demo through Snakemake: every result written, sane metrics, idempotent."""
    snakemake(tmp_path, REPO / "config.yaml", "--cores", "2")
    results = tmp_path / "results"
    for name in ("particles.star", "metrics.json", "umap.png", "loss.png", "similarity.png", "run.json"):
        assert (results / name).stat().st_size > 0, name
    metrics = json.loads((results / "metrics.json").read_text())
    # Chance level for nine known classes is ~0.11; the demo reaches ~0.8 (README).
    assert metrics["f1_macro"] > 0.5
    assert 0 < metrics["ari"] <= 1 and 0 < metrics["nmi"] <= 1
    # The held-out class must not be silently absorbed into a single known class.
    fate = metrics["fates"]["tripod"]
    assert max(fate["assigned"].values()) < 0.9

    import starfile

    table = starfile.read(results / "particles.star")["particles"]
    assert len(table) == 700
    for column in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnClassNumber", "afmClassName", "afmUMAP0"):
        assert column in table.columns
    again = snakemake(tmp_path, REPO / "config.yaml", "-n", "--cores", "2")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_own_data_without_matrix_or_templates_fails_clearly(tmp_path):
    (tmp_path / "picks.star").write_text("")
    config = write_config(tmp_path, data={"particles": "picks.star", "tomograms": [], "truth": None})
    proc = snakemake(tmp_path, config, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "set 'matrix' (a similarity CSV) or 'templates'" in proc.stdout + proc.stderr
