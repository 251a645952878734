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


# Where the process's settings may be read: the steps DAG tasks call, the service, and command-line mains.
# Everything below them gets a Settings argument, so a test or a second configuration can drive it.
SETTINGS_ENTRY_POINTS = {
    "pipeline.py",  # data-plane steps of the DAGs
    "model_plane.py",  # model-plane steps of the DAGs
    "maps.py",  # publish_map's steps
    "serving/service.py",  # the BentoML service
    "settings.py",  # defines it
    "report.py",  # python -m terracover.report
    "region_report.py",  # python -m terracover.region_report
    "change_report.py",  # python -m terracover.change_report
    "simulate.py",  # python -m terracover.simulate
    "alert_rules.py",  # python -m terracover.alert_rules
}


def test_settings_are_read_only_at_entry_points_and_passed_down_below() -> None:
    import ast

    package = ROOT / "include" / "terracover"
    readers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if any(
            isinstance(node, ast.Name | ast.alias) and getattr(node, "id", getattr(node, "name", "")) == "get_settings"
            for node in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert set(readers) <= SETTINGS_ENTRY_POINTS, sorted(set(readers) - SETTINGS_ENTRY_POINTS)
    assert "pipeline.py" in readers, "the check found no reader at all: it would pass whatever the code does"
