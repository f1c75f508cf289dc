"""The demo workflow through workflow/profiles/slurm on a real (local, one-node) SLURM cluster.

The cluster comes from ../shared/tools/local-slurm/start.sh (Debian's SLURM with
accounting, so the executor plugin's sacct status checks work). The test checks with
sacct that every rule ran as its own SLURM job with the threads, mem_mb and runtime
that workflow/rules/*.smk declare. The local cluster has no GPU, so the profile's GPU
requests are switched off with --set-resources; everything else comes from the profile.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
LOCAL_SLURM = Path(os.environ.get("AFFINITOMO_LOCAL_SLURM", REPO.parent / "shared" / "tools" / "local-slurm"))
CORES = 2  # the test passes --cores/--max-threads 2: the local node has nproc CPUs, often 2
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: .*/rule_(\w+)/")
LOCAL_RULES = {"all"}

pytestmark = pytest.mark.slow


def _skip_unless_possible() -> None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("local SLURM needs root (start.sh installs packages and runs the daemons)")
    if not (LOCAL_SLURM / "start.sh").is_file():
        pytest.skip(f"no local-slurm scripts at {LOCAL_SLURM} (set AFFINITOMO_LOCAL_SLURM)")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and apt-get is unavailable to install it")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install snakemake-executor-plugin-slurm)")


def declared_resources() -> dict[str, dict[str, str]]:
    """{rule: {"threads", "mem_mb", "runtime"}} as written in workflow/rules/*.smk."""
    rules: dict[str, dict[str, str]] = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        blocks = re.split(r"^\s*rule (\w+):", smk.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2]):
            found = {key: re.search(pattern, body, flags=re.M) for key, pattern in
                     (("threads", r"^\s+threads:\s*(\S+)"), ("mem_mb", r"mem_mb\s*=\s*(\d+)"),
                      ("runtime", r"runtime\s*=\s*(\d+)"))}
            rules[name] = {k: m.group(1) for k, m in found.items() if m}
    return rules


def expected_threads(value: str) -> int:
    """Threads SLURM should allocate: an integer as written, ``workflow.cores`` -> --cores; capped by --max-threads."""
    n = int(value) if value.isdigit() else CORES
    return min(n, CORES)


def minutes(timelimit: str) -> int:
    """sacct Timelimit ``[D-]HH:MM:SS`` in minutes."""
    days, _, clock = timelimit.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return (int(days) if days else 0) * 1440 + h * 60 + m + round(s / 60)


def megabytes(reqmem: str) -> int:
    """sacct ReqMem (``4000M``, ``8G``, SLURM 22.05 ``4000Mn``) in MB."""
    m = re.fullmatch(r"([\d.]+)([KMGT])[nc]?", reqmem)
    assert m, f"unexpected ReqMem {reqmem!r}"
    return round(float(m.group(1)) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[m.group(2)])


def planned_rules(log: str) -> set[str]:
    """Rules in the "Job stats" table snakemake prints before it starts (the DAG for this config)."""
    table = log.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, flags=re.M)} - LOCAL_RULES


def sacct(job_ids: list[str]) -> dict[str, dict[str, str]]:
    fields = ["JobID", "State", "ReqMem", "Timelimit", "AllocCPUS"]
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), f"--format={','.join(fields)}"],
                         capture_output=True, text=True, check=True).stdout
    return {row[0]: dict(zip(fields, row)) for row in (line.split("|") for line in out.splitlines() if line)}


@pytest.fixture
def local_slurm(tmp_path):
    _skip_unless_possible()
    folder = tmp_path / "cluster"
    start = subprocess.run(["bash", str(LOCAL_SLURM / "start.sh"), str(folder)], capture_output=True, text=True,
                           timeout=600)
    try:
        if start.returncode != 0:
            if shutil.which("sbatch") is None:
                pytest.skip(f"could not install SLURM (apt unavailable?):\n{start.stderr[-2000:]}")
            pytest.fail(f"start.sh failed:\n{start.stdout[-2000:]}\n{start.stderr[-2000:]}")
        yield folder
    finally:
        subprocess.run(["bash", str(LOCAL_SLURM / "stop.sh"), str(folder)], capture_output=True, timeout=120)


def node_memory_mb() -> int:
    return int(subprocess.run(["sinfo", "-h", "-o", "%m"], capture_output=True, text=True, check=True).stdout.split()[0])


def test_demo_workflow_runs_under_slurm_with_declared_resources(local_slurm, tmp_path):
    declared = declared_resources()
    biggest = max(int(r.get("mem_mb", 0)) for r in declared.values())
    if node_memory_mb() < biggest:
        pytest.skip(f"the local node has {node_memory_mb()} MB, a rule asks for {biggest} MB")
    work = tmp_path / "work"
    work.mkdir()
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(device="cpu", train={"epochs": 2})
    # The wiring is under test, not accuracy: fewer simulated particles, no 3-D alignment of unknown groups.
    config["training_data"]["simulated_per_class"] = 100
    config["cluster"] = {"align_unknown": False, "align_regroup": False}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work),
           "--configfile", str(work / "config.yaml"), "--workflow-profile", str(PROFILE),
           # test-only: the local cluster's partition, no GPU there, its 2 CPUs
           "--default-resources", "slurm_partition=debug",
           "--set-resources", "train:gpu=0", "encode:gpu=0",
           "--cores", str(CORES), "--max-threads", str(CORES),
           "--slurm-init-seconds-before-status-checks", "5"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=env, timeout=3000)
    log = proc.stdout + proc.stderr
    print(f"snakemake through SLURM: {time.perf_counter() - started:.0f} s")
    submitted = {rule: job for job, rule in SUBMITTED.findall(log)}
    assert proc.returncode == 0, f"snakemake failed (jobs {submitted}):\n{log[-6000:]}"
    assert (work / "results" / "particles.star").is_file()
    planned = planned_rules(log)
    assert {"simulate_demo", "extract", "train", "encode", "cluster"} <= planned
    assert set(submitted) == planned, f"rules run as SLURM jobs: {sorted(submitted)}, planned: {sorted(planned)}"
    jobs = SUBMITTED.findall(log)
    per_rule = {rule: sum(r == rule for _, r in jobs) for rule in submitted}
    # One job per tomogram for extraction and encoding (the cluster runs them side by side).
    assert per_rule["extract"] == per_rule["encode"] == config["demo"]["n_tomograms"], per_rule
    accounting = sacct([job for job, _ in jobs])
    for job, rule in jobs:
        row, want = accounting[job], declared[rule]
        assert row["State"] == "COMPLETED", (rule, row)
        assert megabytes(row["ReqMem"]) == int(want["mem_mb"]), (rule, row, want)
        assert minutes(row["Timelimit"]) == int(want["runtime"]), (rule, row, want)
        assert int(row["AllocCPUS"]) == expected_threads(want["threads"]), (rule, row, want)
