"""Reliability: hostile requests fuzzed against the real service and faults injected, with what survived.

Runs the fuzzing and fault-injection tests with pytest (the real `bentoml serve`, moto S3 API and MLflow
server behind a failing proxy, RLIMIT_FSIZE disk-full) and reports from what they record in
``test-artifacts/fuzz/``: bodies sent, status counts, responses >= 500, faults injected and passed. The seed
is printed so a run can be replayed.

Run ``python -m benchmarks.bench_reliability`` (the service tests need the data plane under Airflow, as
``make test``; ``--fast`` runs only the tests without it, and not the minutes-long worker kill).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "test-artifacts" / "fuzz"
SERVICE_TESTS = [
    "tests/test_service_fuzz.py",
    "tests/test_faults_store.py",
    "tests/test_faults_registry.py",
    "tests/test_faults_serving.py",
]
FAST_TESTS = [
    "tests/test_aoi_fuzz.py",
    "tests/test_faults_store.py",
    "tests/test_faults_registry.py",
    "-k",
    "not build_stack_on_a_full_disk",
]
FAULTS = {
    "s3_500": "S3 API answers 500 during a prediction",
    "s3_reset": "S3 API resets the connection during a prediction",
    "disk_prediction": "disk full (RLIMIT_FSIZE) during a prediction",
    "disk_build_stack": "disk full (RLIMIT_FSIZE) during build_stack",
    "s3_build_500": "S3 API answers 500 completing a stack's upload (build_stack)",
    "s3_build_reset": "S3 API resets the connection uploading a stack's parts (build_stack)",
    "mlflow_stop_500": "MLflow stops mid-promotion (500 from each call on): aliases only on approved versions",
    "mlflow_stop_reset": "MLflow stops mid-promotion (reset from each call on): aliases only on approved versions",
    "two_promotions": "two promotions of one year at once: one champion, the other superseded",
    "worker_kill": "serving worker SIGKILLed mid-request: client error, next request served, nothing left",
}
NOT_FAST = {"disk_build_stack", "worker_kill"}  # need the Airflow data plane, or minutes of their own
_FAULT_TESTS = {
    "s3_500": "prediction_with_the_s3_api_failing_on_write_leaves_nothing_and_a_retry_is_identical[500-",
    "s3_reset": "prediction_with_the_s3_api_failing_on_write_leaves_nothing_and_a_retry_is_identical[reset-",
    "disk_prediction": "prediction_on_a_full_disk",
    "disk_build_stack": "build_stack_on_a_full_disk",
    "s3_build_500": "build_stack_with_the_s3_api_failing_on_write_leaves_nothing_and_a_retry_is_identical[500-",
    "s3_build_reset": "build_stack_with_the_s3_api_failing_on_write_leaves_nothing_and_a_retry_is_identical[reset-",
    "mlflow_stop_500": "mlflow_stopping_mid_promotion_never_leaves_an_alias_on_an_unapproved_version[500]",
    "mlflow_stop_reset": "mlflow_stopping_mid_promotion_never_leaves_an_alias_on_an_unapproved_version[reset]",
    "two_promotions": "two_promotions_of_one_year_at_once_leave_one_champion_and_the_other_superseded",
    "worker_kill": "a_worker_killed_mid_request_leaves_nothing_and_the_next_request_is_served",
}


def run(fast: bool = False, seed: int | None = None) -> dict[str, Any]:
    seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
    args = FAST_TESTS if fast else ["tests/test_aoi_fuzz.py", *SERVICE_TESTS]
    cmd = [sys.executable, "-m", "pytest", *args, "-q", "-rA", "-p", "no:randomly"]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, "TERRACOVER_FUZZ_SEED": str(seed)},
        capture_output=True,
        text=True,
        check=False,
    )
    out = proc.stdout + proc.stderr
    passed = set(re.findall(r"^PASSED (\S+)", out, re.M))
    faults = {k: any(_FAULT_TESTS[k] in t for t in passed) for k in FAULTS if not fast or k not in NOT_FAST}
    predict = json.loads((FUZZ / "predict.json").read_text()) if (FUZZ / "predict.json").exists() and not fast else {}
    schema = json.loads((FUZZ / "schemathesis.json").read_text()) if (FUZZ / "schemathesis.json").exists() else {}
    calls = schema.get("calls", {}) if not fast else {}
    return {
        "seed": seed,
        "command": f"TERRACOVER_FUZZ_SEED={seed} {shlex.join(['python', '-m', 'pytest', *args])}",
        "seconds": time.perf_counter() - t0,
        "pytest_ok": proc.returncode == 0,
        "bodies": predict.get("bodies", 0),
        "status": predict.get("status", {}),
        "fuzz_5xx": sum(n for s, n in predict.get("status", {}).items() if int(s) >= 500),
        "schema_calls": sum(calls.values()),
        "schema_5xx": sum(n for k, n in calls.items() if int(k.rsplit(" ", 1)[1]) >= 500),
        "schema_paths": len({k.split(" ")[1] for k in calls}),
        "faults": faults,
        "tail": "\n".join(out.splitlines()[-5:]),
    }


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"Fuzzing and fault injection (pytest {'passed' if r['pytest_ok'] else 'FAILED'}, {r['seconds']:.0f} s,"
        f" seed {r['seed']}); reproduce with `{r['command']}`",
        "| measure | value |",
        "|---|---:|",
        f"| /predict bodies fuzzed (Hypothesis) | {r['bodies']:,} |",
        f"| their statuses | {', '.join(f'{k}: {v}' for k, v in r['status'].items()) or '-'} |",
        f"| responses >= 500 among them | {r['fuzz_5xx']} |",
        f"| Schemathesis calls over {r['schema_paths']} documented paths | {r['schema_calls']:,} |",
        f"| Schemathesis responses >= 500 | {r['schema_5xx']} |",
    ]
    lines += [f"| fault: {FAULTS[k]} | {'survived' if ok else 'FAILED'} |" for k, ok in r["faults"].items()]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fast", action="store_true", help="only the tests that need no Airflow data plane")
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args()
    print(format_table(run(a.fast, a.seed)))


if __name__ == "__main__":
    main()
