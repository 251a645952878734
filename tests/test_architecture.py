"""The import graph of the domain package: no cycles, lifecycle layers, no Airflow/DAG imports (pyproject.toml
``[tool.importlinter]`` holds the contracts; ``lint-imports`` checks them with grimp)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(  # noqa: PLW1510 - the assertion reads returncode and shows the report
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_domain_package_imports_no_dag_or_plugin_module() -> None:
    """DAG files and Airflow plugins sit on Airflow's sys.path, so importing them would go unnoticed elsewhere."""
    graph = grimp.build_graph("terracover", include_external_packages=True)
    outside = {p.stem for p in (ROOT / "dags").glob("*.py")} | {
        p.name for p in (ROOT / "plugins").iterdir() if p.is_dir() or p.suffix == ".py"
    }
    outside |= {"dags", "plugins"}
    offending = sorted(
        (importer, imported)
        for importer in graph.modules
        if importer.startswith("terracover")
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported.split(".")[0] in outside
    )
    assert offending == []
