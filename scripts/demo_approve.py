"""The demo's stand-in for the human at the approval gate, through Airflow's REST API (as the UI does).

``python scripts/demo_approve.py URL train_model [Approve|Reject]``: waits for the DAG's pending Required
Action, prints what a reviewer would read (subject and Markdown body), answers it, and exits. Outside the demo,
a person answers in the Airflow UI (Browse -> Required Actions) and nothing answers for them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import httpx


def token(url: str, airflow_home: Path) -> str:
    passwords = json.loads((airflow_home / "simple_auth_manager_passwords.json.generated").read_text())
    user, password = next(iter(passwords.items()))
    r = httpx.post(f"{url}/auth/token", json={"username": user, "password": password}, timeout=30)
    r.raise_for_status()
    return str(r.json()["access_token"])


def main(url: str, dag_id: str, option: str = "Approve", timeout: float = 1800) -> int:
    home = Path(os.environ["AIRFLOW_HOME"])
    with httpx.Client(base_url=f"{url}/api/v2", headers={"Authorization": f"Bearer {token(url, home)}"}) as c:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = c.get("/dags/~/dagRuns/~/hitlDetails", params={"dag_id_pattern": dag_id, "response_received": False})
            r.raise_for_status()
            pending = [d for d in r.json()["hitl_details"] if d["task_instance"]["dag_id"] == dag_id]
            if pending:
                d = pending[0]
                ti = d["task_instance"]
                print(f"\n--- Required action: {d['subject']}\n{d['body']}\n--- demo operator answers: {option}\n")
                path = (
                    f"/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/"
                    f"{ti['map_index']}/hitlDetails"
                )
                c.patch(path, json={"chosen_options": [option]}).raise_for_status()
                return 0
            time.sleep(2)
    print(f"no approval request from {dag_id} within {timeout:.0f} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
