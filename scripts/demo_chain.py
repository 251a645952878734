"""The demo's driver of a live Airflow, through the same REST API the UI uses.

``python scripts/demo_chain.py URL chain YEAR``: unpauses terracover's DAGs, triggers ``ingest_scenes`` for YEAR
once and follows what the assets carry (composites -> training set -> train_model), printing every run as it
ends. At the approval gate it prints what a reviewer reads and, unless ``DEMO_INTERACTIVE=1``, answers
*Approve* as the UI's Required Actions page does (``DEMO_INTERACTIVE=1``: waits for a person to answer in the
UI). Exits non-zero with the failing task's log when a run fails. ``... URL alert YEAR`` starts
``retrain_on_alert`` through its webhook path. Nothing here is needed outside the demo.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

CHAIN = ("ingest_scenes", "build_composites", "build_training_set", "train_model")
UNPAUSE = (*CHAIN, "ingest_dem", "retrain_on_alert", "publish_map")
FINISHED = {"success", "failed"}


class Airflow:
    def __init__(self, url: str, airflow_home: Path):
        passwords = json.loads((airflow_home / "simple_auth_manager_passwords.json.generated").read_text())
        user, password = next(iter(passwords.items()))
        r = httpx.post(f"{url}/auth/token", json={"username": user, "password": password}, timeout=60)
        r.raise_for_status()
        self.url = url
        self.http = httpx.Client(
            base_url=f"{url}/api/v2", headers={"Authorization": f"Bearer {r.json()['access_token']}"}, timeout=60
        )

    def call(self, method: str, path: str, **kw: Any) -> Any:
        """One REST call; SQLite's 'database is locked' surfaces as a 5xx: retried a few times."""
        for attempt in range(10):
            r = self.http.request(method, path, **kw)
            if r.status_code < 500:
                r.raise_for_status()
                return r.json()
            time.sleep(1 + attempt)
        r.raise_for_status()
        return None

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"])

    def tis(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def log_tail(self, ti: dict[str, Any], lines: int = 40) -> str:
        path = f"/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
        got = self.call("GET", path, params={"map_index": ti["map_index"]})
        content = got.get("content") or []
        text = [f"{c.get('event', '')} {c.get('reason') or ''}" if isinstance(c, dict) else str(c) for c in content]
        return "\n".join(text[-lines:])

    def pending_hitl(self, dag_id: str) -> list[dict[str, Any]]:
        got = self.call(
            "GET", "/dags/~/dagRuns/~/hitlDetails", params={"dag_id_pattern": dag_id, "response_received": False}
        )
        return [d for d in got["hitl_details"] if d["task_instance"]["dag_id"] == dag_id]


def wait(check: Callable[[], Any], what: str, timeout: float = 3600) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := check():
            return got
        time.sleep(3)
    sys.exit(f"demo: {what} not reached within {timeout:.0f} s")


def summary(af: Airflow, run: dict[str, Any]) -> str:
    tis = af.tis(run["dag_id"], run["dag_run_id"])
    states: dict[str, int] = {}
    for t in tis:
        states[str(t["state"])] = states.get(str(t["state"]), 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items()))


def follow(af: Airflow, since: str, until: Callable[[], bool]) -> None:
    """Print each chain run started after ``since`` once it ends; stop at ``until()``; exit on a failed run."""
    seen: set[str] = set()
    while not until():
        for dag_id in CHAIN:
            for run in af.runs(dag_id):
                key = f"{dag_id}/{run['dag_run_id']}"
                if key in seen or (run.get("run_after") or "") < since or run["state"] not in FINISHED:
                    continue
                seen.add(key)
                print(f"   {dag_id:<19} {run['run_type']:<16} {run['state']:<8} ({summary(af, run)})", flush=True)
                if run["state"] == "failed":
                    for ti in af.tis(dag_id, run["dag_run_id"]):
                        if ti["state"] == "failed":
                            print(f"--- {ti['task_id']} log:\n{af.log_tail(ti)}")
                    sys.exit(f"demo: {key} failed (see {af.url}/dags/{dag_id})")
        time.sleep(3)


def alert(af: Airflow, year: str) -> int:
    """The webhook path of retrain_on_alert: a TerracoverLowConfidence alert for ``year`` given in the conf."""
    labels = {"alertname": "TerracoverLowConfidence", "year": year}
    run = af.call(
        "POST", "/dags/retrain_on_alert/dagRuns", json={"logical_date": None, "conf": {"alerts": [{"labels": labels}]}}
    )
    run_id = run["dag_run_id"]
    run = wait(lambda: (r := af.call("GET", f"/dags/retrain_on_alert/dagRuns/{run_id}"))["state"] in FINISHED and r,
               "retrain_on_alert finished", 1800)  # fmt: skip
    print(f"   retrain_on_alert {run_id}: {run['state']} ({summary(af, run)})")
    return 0 if run["state"] == "success" else 1


def chain(af: Airflow, url: str, year: str) -> int:
    known = wait(lambda: {d["dag_id"] for d in af.call("GET", "/dags", params={"limit": 100})["dags"]} >= set(CHAIN)
                 and {d["dag_id"] for d in af.call("GET", "/dags", params={"limit": 100})["dags"]},
                 "the dag-processor parsing dags/", 600)  # fmt: skip
    for dag_id in sorted(known & set(UNPAUSE)):
        af.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    print(f"   unpaused {', '.join(sorted(known & set(UNPAUSE)))}")
    start = af.call("POST", "/dags/ingest_scenes/dagRuns", json={"logical_date": None, "conf": {"year": int(year)}})
    print(f"   triggered ingest_scenes {start['dag_run_id']} (conf year {year}); the assets carry the rest:")
    since = str(start["run_after"])

    def ingest_idle() -> bool:
        run = af.call("GET", f"/dags/ingest_scenes/dagRuns/{start['dag_run_id']}")
        if run["state"] != "success":
            return False
        publish = [t for t in af.tis("ingest_scenes", run["dag_run_id"]) if t["task_id"] == "publish"]
        return bool(publish) and publish[0]["state"] == "skipped"

    def asking_or_done() -> bool:
        if ingest_idle():
            return True
        if af.pending_hitl("train_model"):
            return True
        return any(r["state"] in FINISHED and r["run_after"] >= since and r["run_type"] != "scheduled"
                   for r in af.runs("train_model"))  # fmt: skip

    follow(af, since, asking_or_done)
    if ingest_idle() and not af.pending_hitl("train_model"):
        print(f"   no new scenes for {year}: the chain has nothing new to carry (a previous run built it)")
        return 0
    detail = af.pending_hitl("train_model")[0]
    ti = detail["task_instance"]
    print(f"\n--- Required action: {detail['subject']}\n{detail['body']}\n---")
    if os.environ.get("DEMO_INTERACTIVE") == "1":
        print(f"   waiting for you: open {url}/required_actions, pick the request, Approve or Reject", flush=True)
        wait(lambda: not af.pending_hitl("train_model"), "an answer in Required Actions", 24 * 3600)
    else:
        path = (
            f"/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/"
            f"{ti['map_index']}/hitlDetails"
        )
        af.call("PATCH", path, json={"chosen_options": ["Approve"]})
        print("   the demo operator answered Approve (DEMO_INTERACTIVE=1 leaves it to you)")
    run_id = ti["dag_run_id"]
    follow(af, since, lambda: af.call("GET", f"/dags/train_model/dagRuns/{run_id}")["state"] in FINISHED)
    run = af.call("GET", f"/dags/train_model/dagRuns/{run_id}")
    print(f"   train_model {run_id}: {run['state']} ({summary(af, run)})")
    return 0 if run["state"] == "success" else 1


def main(url: str, what: str, year: str) -> int:
    af = Airflow(url, Path(os.environ["AIRFLOW_HOME"]))
    return chain(af, url, year) if what == "chain" else alert(af, year)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
