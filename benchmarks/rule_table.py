"""Per-rule wall time and peak memory of a finished workflow run, from Snakemake's benchmark files.

Every rule writes ``<results>/benchmarks/<rule>.tsv`` (per-tomogram rules
``<results>/benchmarks/<rule>/<tomo>.tsv``) through its ``benchmark:`` directive. Snakemake
measures ``s`` (wall seconds) and ``max_rss`` (peak resident set size of the job's process tree,
MB, which includes file-backed pages such as memory-mapped stacks; it is not RssAnon). This
script gathers them into one table, the slowest rule first:

    python benchmarks/rule_table.py results            # a Markdown table
    python benchmarks/rule_table.py results --csv      # CSV

Per-tomogram rules are shown as one row: the jobs' summed wall time (what they cost one core
after another) and the largest max RSS.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def read_benchmarks(results: Path) -> dict[str, dict[str, float]]:
    """{rule: {"jobs", "wall_s", "max_wall_s", "max_rss_mb"}} from ``results/benchmarks``."""
    folder = results / "benchmarks"
    if not folder.is_dir():
        raise SystemExit(f"{folder}: no benchmark files (is {results} a finished workflow run?)")
    rules: dict[str, dict[str, float]] = {}
    for tsv in sorted(folder.rglob("*.tsv")):
        rule = tsv.parent.name if tsv.parent != folder else tsv.stem
        with tsv.open() as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows:
            continue
        row = rows[-1]
        wall = float(row["s"])
        rss = float(row["max_rss"]) if row.get("max_rss", "NA") not in ("NA", "") else float("nan")
        entry = rules.setdefault(rule, {"jobs": 0, "wall_s": 0.0, "max_wall_s": 0.0, "max_rss_mb": 0.0})
        entry["jobs"] += 1
        entry["wall_s"] += wall
        entry["max_wall_s"] = max(entry["max_wall_s"], wall)
        entry["max_rss_mb"] = max(entry["max_rss_mb"], rss)
    return rules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the run's results folder")
    parser.add_argument("--csv", action="store_true", help="CSV instead of a Markdown table")
    args = parser.parse_args(argv)
    rules = read_benchmarks(args.results)
    order = sorted(rules, key=lambda r: -rules[r]["wall_s"])
    total = sum(r["wall_s"] for r in rules.values())
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["rule", "jobs", "wall_s", "max_job_wall_s", "max_rss_mb"])
        for rule in order:
            r = rules[rule]
            writer.writerow([rule, r["jobs"], f"{r['wall_s']:.1f}", f"{r['max_wall_s']:.1f}", f"{r['max_rss_mb']:.0f}"])
        return 0
    print("| rule | jobs | wall (s, summed) | share | max RSS (MB) |")
    print("|---|---|---|---|---|")
    for rule in order:
        r = rules[rule]
        print(f"| {rule} | {r['jobs']} | {r['wall_s']:.1f} | {100 * r['wall_s'] / total:.0f} % | {r['max_rss_mb']:.0f} |")
    print(f"| all jobs | {sum(r['jobs'] for r in rules.values())} | {total:.1f} | 100 % | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
