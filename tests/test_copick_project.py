"""copick projects through the copick library: import (picks, lazy tomograms), export, bad input."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

copick = pytest.importorskip("copick")

from copick.models import PickableObject  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from affinitomo.cli import main  # noqa: E402
from affinitomo.errors import InputError  # noqa: E402
from affinitomo.io import copick_project as project  # noqa: E402
from affinitomo.io.particles import read_particles, write_particles  # noqa: E402
from affinitomo.io.volumes import open_volume  # noqa: E402

SPACING = 10.0
SHAPE = (40, 48, 56)  # z, y, x
ANGLES = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
COORDS = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]


def _relion_matrix(angles: np.ndarray) -> np.ndarray:
    """The reference-to-particle rotation of RELION ZYZ angles, straight from scipy."""
    return Rotation.from_euler("ZYZ", np.atleast_2d(angles), degrees=True).inv().as_matrix()


@pytest.fixture
def proj(tmp_path: Path) -> dict:
    """A project written with copick's API: two runs, a wbp tomogram each, picks with orientations."""
    rng = np.random.default_rng(3)
    config = tmp_path / "proj" / "config.json"
    root = copick.new_config(str(config), str(tmp_path / "proj" / "overlay"), pickable_objects=[
        PickableObject(name="ribosome", is_particle=True, label=1),
        PickableObject(name="proteasome", is_particle=True, label=2),
        PickableObject(name="membrane", is_particle=False, label=3),
    ])
    volumes, picks = {}, {}
    for r, name in enumerate(["TS-01", "TS-02"]):
        run = root.new_run(name)
        vol = rng.normal(size=SHAPE).astype(np.float32)
        run.new_voxel_spacing(SPACING).new_tomogram("wbp").from_numpy(vol)
        volumes[name] = vol
        for obj in ["ribosome", "proteasome"] if r == 0 else ["ribosome"]:
            n = 3
            centres = rng.uniform([80, 80, 80], [470, 390, 310], size=(n, 3))  # Å, x y z, inside the volume
            transforms = np.tile(np.eye(4), (n, 1, 1))
            transforms[:, :3, :3] = Rotation.random(n, random_state=rng).as_matrix()
            transforms[0, :3, 3] = [5.0, -10.0, 20.0]  # a shift added to the location
            locations = centres - transforms[:, :3, 3]
            run.new_picks(obj, session_id="1", user_id="me").from_numpy(locations, transforms)
            picks[name, obj] = (centres, transforms)
        if r == 0:  # another user's picks, left out by --user me
            run.new_picks("ribosome", session_id="2", user_id="other").from_numpy(np.array([[100.0, 100.0, 100.0]]))
    return {"config": config, "volumes": volumes, "picks": picks}


def test_import_gives_pixel_coordinates_relion_angles_and_class_names(proj):
    plan = project.plan_import(proj["config"], user_id="me", voxel_spacing=SPACING, tomo_type="wbp")
    assert plan.objects == ["ribosome", "proteasome"] and plan.runs == ["TS-01", "TS-02"]  # membrane: no particle
    table = project.read_project_picks(plan)
    assert len(table) == 9 and (table["afmPixelSize"] == SPACING).all() and (table["afmCopickUser"] == "me").all()
    for (run, obj), (centres, transforms) in proj["picks"].items():
        rows = table[(table["rlnTomoName"] == run) & (table["afmClassName"] == obj)]
        np.testing.assert_allclose(rows[COORDS].to_numpy(), centres / SPACING, atol=1e-9)
        np.testing.assert_allclose(_relion_matrix(rows[ANGLES].to_numpy()), transforms[:, :3, :3], atol=1e-9)
    everyone = project.read_project_picks(project.plan_import(proj["config"], voxel_spacing=SPACING))
    assert len(everyone) == 10 and set(everyone["afmCopickUser"]) == {"me", "other"}
    one = project.read_project_picks(project.plan_import(proj["config"], objects=["proteasome"], voxel_spacing=SPACING))
    assert one["rlnTomoName"].unique().tolist() == ["TS-01"] and (one["afmClassName"] == "proteasome").all()


def test_tomogram_reference_is_read_lazily_and_extracts(proj, tmp_path):
    from affinitomo.extract import extract_subtomograms

    plan = project.plan_import(proj["config"], user_id="me", voxel_spacing=SPACING, tomo_type="wbp")
    refs = project.write_tomogram_references(plan, "wbp", tmp_path / "tomograms")
    assert sorted(refs) == ["TS-01", "TS-02"] and refs["TS-01"].name == "TS-01.copick"
    data, voxel = open_volume(refs["TS-02"])
    assert not isinstance(data, np.ndarray) and data.shape == SHAPE and voxel == SPACING  # a zarr array
    np.testing.assert_array_equal(data[3:9, 10:20, 5:7], proj["volumes"]["TS-02"][3:9, 10:20, 5:7])
    table = project.read_project_picks(plan)
    out = extract_subtomograms(table, refs, 8, tmp_path / "extract", normalise=False, progress=False)
    stack = np.load(tmp_path / "extract" / "subtomos.npy", mmap_mode="r")
    for i, row in out.iterrows():
        z, y, x = (int(np.floor(row[c] + 0.5)) for c in COORDS[::-1])
        if min(z, y, x) >= 4 and z + 4 <= SHAPE[0] and y + 4 <= SHAPE[1] and x + 4 <= SHAPE[2]:
            expected = proj["volumes"][row["rlnTomoName"]][z - 4:z + 4, y - 4:y + 4, x - 4:x + 4]
            np.testing.assert_array_equal(stack[i], expected)


def test_cli_import_writes_the_table_and_references(proj, tmp_path):
    out = tmp_path / "imported"
    assert main(["copick", "import", "--config", str(proj["config"]), "--user", "me", "--runs", "TS-01",
                 "--voxel-spacing", "10", "--tomo-type", "wbp", "--out", str(out)]) == 0
    table = read_particles(out / "particles.star")
    assert set(table["rlnTomoName"]) == {"TS-01"} and sorted(set(table["afmClassName"])) == ["proteasome", "ribosome"]
    assert [p.name for p in (out / "tomograms").iterdir()] == ["TS-01.copick"]
    assert main(["extract", "--particles", str(out / "particles.star"), "--tomograms",
                 str(out / "tomograms" / "TS-01.copick"), "--box", "8", "--out", str(tmp_path / "ex")]) == 0
    assert np.load(tmp_path / "ex" / "subtomos.npy").shape == (6, 8, 8, 8)


def _results(proj) -> pd.DataFrame:
    """A cluster-stage results table: known classes, an unknown group, unknown noise."""
    table = project.read_project_picks(project.plan_import(proj["config"], user_id="me", voxel_spacing=SPACING))
    rng = np.random.default_rng(5)
    n = len(table)
    names = np.array(["ribosome", "proteasome", "unknown", "unknown"] * 3)[:n]
    clusters = np.array([0, 1, 3, -1] * 3)[:n]
    table["afmClassName"] = names
    table["afmClusterId"] = clusters
    table["rlnClassNumber"] = np.where(names == "ribosome", 1, np.where(names == "proteasome", 2, np.where(clusters >= 0, 3, 0)))
    table[ANGLES] = Rotation.random(n, random_state=rng).inv().as_euler("ZYZ", degrees=True)
    return table


def test_export_then_copick_reads_the_same_positions_and_orientations(proj, tmp_path):
    results = _results(proj)
    star = write_particles(tmp_path / "results" / "particles.star", results)
    summary = tmp_path / "export.json"
    assert main(["copick", "export", "--config", str(proj["config"]), "--particles", str(star), "--session", "7",
                 "--summary", str(summary)]) == 0
    root = copick.from_file(str(proj["config"]))
    assert root.get_object("unknown-c3") is not None and root.get_object("unknown-c3").is_particle
    assert root.get_object("ribosome").label == 1  # existing objects untouched
    counts = json.loads(summary.read_text())
    groups = np.where(results["afmClassName"] == "unknown",
                      ["unknown-c3" if c >= 0 else "" for c in results["afmClusterId"]], results["afmClassName"])
    for run in root.runs:
        for picks in run.get_picks(user_id="affinitomo", session_id="7"):
            sel = (results["rlnTomoName"] == run.name).to_numpy() & (groups == picks.pickable_object_name)
            assert sel.sum() == len(picks.points) == counts[run.name][picks.pickable_object_name]
            np.testing.assert_allclose(picks.full_positions(), results.loc[sel, COORDS].to_numpy() * SPACING, atol=1e-4)
            _, transforms = picks.numpy()
            np.testing.assert_allclose(transforms[:, :3, :3], _relion_matrix(results.loc[sel, ANGLES].to_numpy()),
                                       atol=1e-5)
    written = sum(sum(c.values()) for c in counts.values())
    assert written == int((groups != "").sum()) and "unknown" not in {o for c in counts.values() for o in c}
    # Re-imported through affinitomo, the export gives the same table per class.
    again = project.read_project_picks(project.plan_import(proj["config"], user_id="affinitomo", voxel_spacing=SPACING))
    assert sorted(set(again["afmClassName"])) == sorted(set(groups) - {""})
    # Read with no user named, the project gives its input picks alone, not the exported results.
    inputs = project.plan_import(proj["config"], voxel_spacing=SPACING)
    assert inputs.objects == ["ribosome", "proteasome", "unknown-c3"] and inputs.runs == ["TS-01", "TS-02"]
    assert "affinitomo" not in set(project.read_project_picks(inputs)["afmCopickUser"])
    # A second export without the unknown group removes its stale picks.
    results = results[results["afmClassName"] != "unknown"]
    assert main(["copick", "export", "--config", str(proj["config"]), "--particles",
                 str(write_particles(tmp_path / "r2.star", results)), "--session", "7"]) == 0
    root = copick.from_file(str(proj["config"]))
    left = {p.pickable_object_name for run in root.runs for p in run.get_picks(user_id="affinitomo")}
    assert left == {"ribosome", "proteasome"}


def test_export_refuses_unknown_runs_and_names(proj, tmp_path):
    results = _results(proj)
    results.loc[0, "rlnTomoName"] = "TS-99"
    with pytest.raises(InputError) as err:
        project.export_picks(proj["config"], results, session_id="1", source="r.star")
    assert err.value.field == "rlnTomoName" and err.value.path == "r.star"
    results = _results(proj)
    results.loc[0, "afmClassName"] = "ribo_a"
    results.loc[1, "afmClassName"] = "ribo-a"
    with pytest.raises(InputError) as err:
        project.export_picks(proj["config"], results, session_id="1", source="r.star")
    assert err.value.field == "afmClassName"
    with pytest.raises(InputError) as err:
        project.export_picks(proj["config"], _results(proj), session_id="my session", source="r.star")
    assert err.value.field == "session_id"


@pytest.mark.parametrize(("change", "field"), [
    ({"objects": ["ribosme"]}, "pickable_objects"),
    ({"voxel_spacing": 12.0}, "voxel_spacing"),
    ({"tomo_type": "denoised"}, "tomo_type"),
    ({"runs": ["TS-09"]}, "runs"),
    ({"user_id": "nobody"}, "picks"),
    ({"voxel_spacing": -1.0}, "voxel_spacing"),
])
def test_bad_choices_name_the_config_and_field(proj, change, field):
    kwargs = {"voxel_spacing": SPACING, "tomo_type": "wbp", **change}
    with pytest.raises(InputError) as err:
        project.plan_import(proj["config"], **kwargs)
    assert err.value.field == field and err.value.path == str(proj["config"])


def test_missing_or_broken_config(tmp_path, proj):
    with pytest.raises(InputError) as err:
        project.plan_import(tmp_path / "nope" / "config.json", voxel_spacing=SPACING)
    assert err.value.path == str(tmp_path / "nope" / "config.json") and "not found" in str(err.value)
    bad = tmp_path / "bad.json"
    bad.write_text('{"config_type": "filesystem"}')
    with pytest.raises(InputError) as err:
        project.plan_import(bad, voxel_spacing=SPACING)
    assert err.value.path == str(bad)
    assert main(["copick", "import", "--config", str(bad), "--voxel-spacing", "10", "--out", str(tmp_path / "o")]) == 2


def test_broken_picks_file_and_reference(proj, tmp_path):
    picks = next((proj["config"].parent / "overlay").rglob("me_1_ribosome.json"))
    doc = json.loads(picks.read_text())
    doc["points"][0]["transformation_"] = [[1, 0], [0, 1]]
    picks.write_text(json.dumps(doc))
    with pytest.raises(InputError) as err:
        project.read_project_picks(project.plan_import(proj["config"], user_id="me", voxel_spacing=SPACING))
    assert err.value.path.endswith("me_1_ribosome.json")
    ref = tmp_path / "x.copick"
    ref.write_text('{"format": "something else"}')
    with pytest.raises(InputError) as err:
        open_volume(ref)
    assert err.value.path == str(ref) and err.value.field == "format"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.write_text(json.dumps({"format": project.REFERENCE_FORMAT, "config": str(proj["config"]), "run": "TS-01",
                                   "voxel_spacing": 20.0, "tomo_type": "wbp"}))
    with pytest.raises(InputError) as err:
        open_volume(ref)
    assert err.value.field == "voxel_spacing"


def test_workflow_dry_run_plans_import_extract_and_export(proj, tmp_path):
    import os
    import subprocess
    import sys

    import yaml

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config.yaml").read_text())
    config["copick"] = {"config": str(proj["config"]), "user_id": "me", "voxel_spacing": SPACING,
                        "export": True, "export_session": "7"}
    config["similarity"] = {"matrix": str(tmp_path / "matrix.csv")}
    (tmp_path / "matrix.csv").write_text("name,ribosome,proteasome\nribosome,1,0\nproteasome,0,1\n")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(tmp_path),
                           "--configfile", str(tmp_path / "config.yaml"), "-n", "--cores", "1", "-p"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "copick import" in out and "--runs TS-01 TS-02" in out and "--user me" in out
    assert "results/copick/tomograms/TS-02.copick" in out and "copick export" in out and "--session 7" in out
