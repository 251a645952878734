"""``make bench``: every benchmark in one run, each against its baseline measured in the same run.

Prints Markdown tables and writes ``benchmarks/results/latest.md`` and ``latest.json`` with the machine's
description. ``--quick`` shrinks every case (CI smoke run; the ratios are then only indicative).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import (
    bench_catalog,
    bench_classify,
    bench_composite,
    bench_gapfill,
    bench_realdata,
    bench_reliability,
    bench_scale,
    bench_serving,
    bench_simulator,
    bench_tiles,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "platform": platform.platform()}  # fmt: skip


def airflow_parse() -> dict[str, Any]:
    """DagBag parse time per DAG file (a fresh interpreter, Airflow configured for a temp home)."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
               "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}:{ROOT / 'include'}"}  # fmt: skip
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, str(ROOT / "tests" / "dag_report.py"), str(ROOT / "dags")], env=env,
                             capture_output=True, text=True, check=True, timeout=600).stdout  # fmt: skip
        wall = time.perf_counter() - t0
    report = json.loads(out[out.index("REPORT") + len("REPORT") :])
    return {"files": {k: v["seconds"] for k, v in report["files"].items()}, "process_seconds": wall}


DAG_TEST_REGION = "[-0.012, 39.950, 0.012, 39.962]"  # the test region: two tiles, two UTM zones, 2.6 km^2


def airflow_dag_test() -> dict[str, Any]:
    """``airflow dags test`` wall time of each data-plane DAG on the test region (SQLite metadata DB)."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {**os.environ, "AIRFLOW_HOME": str(home / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
               "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
               "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}:{ROOT / 'include'}", "TERRACOVER_HOME": str(home / "tc"),
               "TERRACOVER_REGION_BBOX": DAG_TEST_REGION, "TERRACOVER_SUBTILE_SIZE": "366"}  # fmt: skip
        airflow = str(Path(sys.executable).parent / "airflow")

        def timed(*cmd: str) -> float:
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200, check=False)
            if proc.returncode != 0 or "state=failed" in proc.stdout + proc.stderr:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
            return time.perf_counter() - t0

        out = {"db migrate": timed(airflow, "db", "migrate")}
        out["simulate"] = timed(
            sys.executable, "-m", "terracover.simulate", "--years", "2023", "--dates-per-season", "2"
        )
        conf = json.dumps({"year": 2023})
        out["ingest_scenes"] = timed(airflow, "dags", "test", "ingest_scenes", "--conf", conf)
        out["ingest_dem"] = timed(airflow, "dags", "test", "ingest_dem")
        out["build_composites"] = timed(airflow, "dags", "test", "build_composites", "--conf", conf)
        out["build_training_set"] = timed(airflow, "dags", "test", "build_training_set", "--conf", conf)
    return {"region": DAG_TEST_REGION, "seconds": out}


def format_dag_test(r: dict[str, Any]) -> str:
    lines = [f"`airflow dags test` on the test region {r['region']} (2 tiles, 2 UTM zones, 8 dates, subtiles 366 px)",
             "| step | s |", "|---|---:|"]  # fmt: skip
    lines += [f"| {k} | {v:.1f} |" for k, v in r["seconds"].items()]
    return "\n".join(lines)


def format_airflow(r: dict[str, Any]) -> str:
    lines = ["Airflow DAG parse time (DagBag, per file; heavy imports stay inside tasks)", "| DAG file | s |",
             "|---|---:|"]  # fmt: skip
    lines += [f"| {k} | {v:.3f} |" for k, v in sorted(r["files"].items())]
    lines.append(f"| whole report process (interpreter + Airflow import) | {r['process_seconds']:.1f} |")
    return "\n".join(lines)


def sections(quick: bool) -> list[tuple[str, Any, Any]]:
    """Every section of ``make bench``: (name, run, format). One line each, so new sections add one line."""
    size, dates = (366, (12,)) if quick else (1098, (12, 24))
    pixels = 100_000 if quick else 1_000_000
    requests = 60 if quick else 1000
    return [
        ("composite", lambda: bench_composite.run(size=size, dates=dates, repeat=2), bench_composite.format_table),
        ("classification", lambda: bench_classify.run(pixels=pixels), bench_classify.format_table),
        ("realdata", lambda: bench_realdata.run(n_folds=3 if quick else 5), bench_realdata.format_table),
        ("serving", lambda: bench_serving.run(requests=requests, clients=4, repeat=2 if quick else 5),
         bench_serving.format_table),
        ("simulator", lambda: bench_simulator.run(timing=not quick), bench_simulator.format_table),
        ("gapfill", bench_gapfill.run, bench_gapfill.format_table),
        ("airflow", airflow_parse, format_airflow),
        ("airflow_dag_test", airflow_dag_test, format_dag_test),
        ("planning", bench_scale.planning, bench_scale.format_planning),
        ("subtile_year", lambda: bench_scale.subtile_year(1 if quick else 2, 366 if quick else 1098),
         bench_scale.format_subtile_year),
        ("catalog", lambda: bench_catalog.run(queries=10 if quick else 40), bench_catalog.format_table),
        ("reliability", lambda: bench_reliability.run(fast=quick), bench_reliability.format_table),
        ("tiles", lambda: bench_tiles.run(size=366 if quick else 1098), bench_tiles.format_table),
    ]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run, ratios only indicative")
    p.add_argument("--only", nargs="+", metavar="SECTION", help="run these sections only (written to partial.md)")
    a = p.parse_args()
    chosen = sections(a.quick)
    if a.only:
        unknown = set(a.only) - {name for name, _, _ in chosen}
        if unknown:
            p.error(f"unknown section(s) {sorted(unknown)}; choose from {[name for name, _, _ in chosen]}")
        chosen = [s for s in chosen if s[0] in a.only]
    t0 = time.perf_counter()
    tables: list[str] = []
    results: dict[str, Any] = {"machine": machine(), "when": datetime.now(UTC).isoformat(timespec="seconds"),
                               "load_before": os.getloadavg()}  # fmt: skip
    for name, fn, fmt in chosen:
        t = time.perf_counter()
        print(f"... {name}", flush=True)
        res = fn()
        results[name] = res
        table = fmt(res)
        tables.append(table if "\n|" in table else f"```\n{table}\n```")  # fixed-width text stays as is
        print(table + f"\n({name}: {time.perf_counter() - t:.0f} s)\n", flush=True)
    results["total_seconds"] = time.perf_counter() - t0
    results["load_after"] = os.getloadavg()
    m = results["machine"]
    load = " / ".join(f"{x:.1f}" for x in results["load_before"]), " / ".join(f"{x:.1f}" for x in results["load_after"])
    head = (f"# terracover benchmarks ({results['when']})\n\nMachine: {m['cpu']}, {m['cores']} cores, "
            f"{m['memory_gib']} GiB, Python {m['python']}; load average (1 / 5 / 15 min) {load[0]} before,"
            f" {load[1]} after (a shared machine: the other load slows every section, ratios less than times)."
            f" Total {results['total_seconds']:.0f} s{' (quick run)' if a.quick else ''}.\n")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "partial" if a.only else "quick" if a.quick else "latest"
    (RESULTS / f"{name}.md").write_text(head + "\n" + "\n\n".join(tables) + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"total {results['total_seconds']:.0f} s; written to {RESULTS / name}.md/.json")


if __name__ == "__main__":
    main()
