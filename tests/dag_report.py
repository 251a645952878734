"""Loads dags/ with Airflow's own DagBag and prints what the integrity test checks, as JSON.

Run in a subprocess (Airflow must be configured before import). For each file it also records which heavy
modules its top level imported, so the test can forbid slow imports at parse time without timing assertions.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

HEAVY = (
    "sklearn",
    "mlflow",
    "great_expectations",
    "bentoml",
    "lightgbm",
    "numba",
    "rasterio",
    "pandas",
    "pystac_client",
    "sentinelhub",
    "matplotlib",
    "boto3",
    "pypgstac",
)


WARM_UP_DAG = """
from datetime import datetime
from airflow.sdk import Asset, dag, task

@dag(schedule=[Asset(name="warm", uri="warm://up")], start_date=datetime(2024, 1, 1))
def warm_up():
    @task(executor_config={})
    def noop() -> None: ...
    noop.expand_kwargs([{}])

warm_up()
"""


def main(dags_folder: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    report: dict[str, object] = {"files": {}, "dags": {}, "import_errors": {}}
    # Parse a trivial DAG first so what Airflow itself imports on a first parse is not blamed on our files.
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm_up.py"
        warm.write_text(WARM_UP_DAG)
        DagBag(dag_folder=str(warm), safe_mode=False)
    for path in sorted(Path(dags_folder).glob("*.py")):
        before = set(sys.modules)
        t0 = time.perf_counter()
        bag = DagBag(dag_folder=str(path), safe_mode=False)
        elapsed = time.perf_counter() - t0
        new = {m.split(".")[0] for m in set(sys.modules) - before}
        report["files"][path.name] = {  # type: ignore[index]
            "seconds": round(elapsed, 3),
            "heavy_imports": sorted(new & set(HEAVY)),
        }
        report["import_errors"].update(bag.import_errors)  # type: ignore[attr-defined]
        for dag_id, dag in bag.dags.items():
            report["dags"][dag_id] = {  # type: ignore[index]
                "file": path.name,
                "tags": sorted(dag.tags or []),
                "owners": sorted({t.owner for t in dag.tasks}),
                "retries": sorted({t.retries for t in dag.tasks}),
                "tasks": len(dag.tasks),
                "doc": bool(dag.doc_md or dag.description),
            }
    print("REPORT" + json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
