"""Deployment files, validated offline (no Docker engine, no cluster, no network).

- helm-values/airflow.yaml against the Airflow chart's values schema; the heavy pod template against Kubernetes'.
- the official Airflow chart rendered with helm-values/airflow.yaml (Helm SDK), every manifest and the worker pod
  template inside its ConfigMap checked with kubernetes-validate, and what the values mean to set asserted in the
  output. The chart is not in the repository: it is read from ../shared/charts/airflow or $TERRACOVER_AIRFLOW_CHART
  (an unpacked chart directory), skipped when absent (README "Kubernetes").
- docker-compose.yaml against the Compose specification, plus what the schema cannot see: every ``depends_on``
  target exists and can satisfy its condition, every ``${VAR}`` is declared in .env.example, images are pinned,
  bind-mounted files exist.
- deploy/k8s/serving rendered with the Helm SDK (helm-python-sdk) and every manifest checked with
  kubernetes-validate; the PrometheusRule's groups go through ``promtool check rules``.
- hadolint on the Dockerfiles, ``promtool check config`` on the compose Prometheus configuration.

Each check is a function returning its problems, so the negative controls at the end can show that a broken input
fails it. Tests needing a binary (hadolint, promtool) skip only when it is missing; schemas come from
../shared/schemas (skipped when absent), the Airflow chart likewise.
"""

from __future__ import annotations

import configparser
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT.parent / "shared" / "schemas"
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
AIRFLOW_VALUES = ROOT / "helm-values" / "airflow.yaml"
POD_TEMPLATES = sorted((ROOT / "helm-values" / "pod-templates").glob("*.yaml"))
SERVING_CHART = ROOT / "deploy" / "k8s" / "serving"
RULES_SOURCE = ROOT / "include" / "monitoring" / "rules" / "terracover.rules.yml"
RULES_COPY = SERVING_CHART / "files" / "terracover.rules.yml"
COMPOSE_PROMETHEUS = ROOT / "deploy" / "compose" / "prometheus.yml"
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "Dockerfile.serving", ROOT / "deploy" / "compose" / "mlflow" / "Dockerfile"]
K8S_VERSION = "1.35.0"
AIRFLOW_CHART = Path(os.environ.get("TERRACOVER_AIRFLOW_CHART") or ROOT.parent / "shared" / "charts" / "airflow")
AIRFLOW_POOLS = ROOT / "helm-values" / "airflow-pools.json"
AIRFLOW_WORKLOADS = {"scheduler", "api-server", "dag-processor", "triggerer"}
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Kubernetes' resource.Quantity: the OpenAPI schemas only say "string or number", the API server parses this
QUANTITY = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([numkMGTPE]|[KMGTPE]i|[eE][+-]?\d+)?")


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _schema(name: str) -> dict[str, Any]:
    path = SCHEMAS / name
    if not path.exists():
        pytest.skip(f"{path} not found (the shared schemas live beside the repository)")
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


# ---------------------------------------------------------------------------------------------- checks


def schema_errors(document: Any, schema: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(document)]


def compose_problems(doc: dict[str, Any]) -> list[str]:
    """What the Compose schema cannot check: dependency targets, conditions, one-shot jobs, pinned images."""
    problems: list[str] = []
    services: dict[str, Any] = doc.get("services", {})
    for name, svc in services.items():
        image = svc.get("image", "")
        if not svc.get("build"):
            if not image:
                problems.append(f"{name}: neither image nor build")
            elif ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                problems.append(f"{name}: image {image!r} is not pinned to a tag")
        deps = svc.get("depends_on", {})
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for target, spec in deps.items():
            if target not in services:
                problems.append(f"{name}: depends_on unknown service {target!r}")
                continue
            condition = (spec or {}).get("condition", "service_started")
            target_hc = services[target].get("healthcheck") or {}
            if condition == "service_healthy" and (not target_hc.get("test") or target_hc.get("disable")):
                problems.append(f"{name}: waits for {target} healthy but {target} has no healthcheck")
            if condition == "service_completed_successfully" and services[target].get("restart", "no") != "no":
                problems.append(f"{name}: waits for {target} to complete but {target} restarts")
    return problems


_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(k) + _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def compose_variables(doc: dict[str, Any]) -> set[str]:
    """Every variable compose interpolates (``$${X}`` is an escaped literal, left to the container's shell)."""
    return {m for s in _strings(doc) for m in _VAR.findall(s)}


def env_example_names(text: str) -> set[str]:
    return set(re.findall(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=", text, re.M))


def hadolint_problems(dockerfile: Path) -> str:
    proc = subprocess.run(
        [_binary("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    return "" if proc.returncode == 0 else (proc.stdout + proc.stderr).strip() or f"exit {proc.returncode}"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_binary("promtool"), *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


def render_serving_chart(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    helm = pytest.importorskip("helm_python")
    chart = helm.Chart.load(str(SERVING_CHART))
    rendered = chart.render(values, name="terracover-serving", namespace="terracover", is_install=True)
    return [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]


def manifest_problems(doc: dict[str, Any]) -> list[str]:
    """Built-in kinds against Kubernetes' OpenAPI schemas (strict); CRDs by shape only."""
    import kubernetes_validate

    kind = doc.get("kind")
    name = (doc.get("metadata") or {}).get("name")
    if not doc.get("apiVersion") or not kind or not name:
        return [f"{kind or '?'}: apiVersion, kind and metadata.name are required"]
    if kind in CRD_KINDS:
        if doc["apiVersion"] != "monitoring.coreos.com/v1" or not isinstance(doc.get("spec"), dict):
            return [f"{kind}/{name}: expected monitoring.coreos.com/v1 with a spec"]
        return []
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
        return [f"{kind}/{name}: {str(exc)[:500]}"]
    return [f"{kind}/{name}: {problem}" for problem in quantity_problems(doc)]


def quantity_problems(node: Any, path: str = "") -> list[str]:
    """Requests and limits (anywhere in a manifest) that the API server would not parse as quantities."""
    if isinstance(node, list):
        return [p for i, item in enumerate(node) for p in quantity_problems(item, f"{path}[{i}]")]
    if not isinstance(node, dict):
        return []
    problems = []
    for key, value in node.items():
        if key in {"requests", "limits"} and isinstance(value, dict) and path.endswith("resources"):
            problems += [
                f"{path}.{key}.{resource}: {quantity!r} is not a quantity"
                for resource, quantity in value.items()
                if isinstance(quantity, bool) or not QUANTITY.fullmatch(str(quantity))
            ]
        else:
            problems += quantity_problems(value, f"{path}.{key}" if path else key)
    return problems


def render_airflow_chart(values: dict[str, Any]) -> dict[str, str]:
    """The official chart rendered as ``helm install airflow -n terracover -f helm-values/airflow.yaml`` would."""
    helm = pytest.importorskip("helm_python")
    if not (AIRFLOW_CHART / "Chart.yaml").is_file():
        pytest.skip(f"{AIRFLOW_CHART} has no Chart.yaml (the Airflow chart lives beside the repository)")
    rendered: dict[str, str] = _load_chart(helm, AIRFLOW_CHART).render(
        values, name="airflow", namespace="terracover", is_install=True
    )
    return rendered


@functools.cache
def _load_chart(helm: Any, path: Path) -> Any:
    """Loaded once per session: the Airflow chart is ~200 files and the negative controls render it four times."""
    return helm.Chart.load(str(path))


def airflow_chart_problems(values: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Rendered manifests and their problems, the worker pod template (a file in the ConfigMap) included.

    The chart renders the pod template as text, so a broken one still makes a valid ConfigMap: it is parsed and
    validated as the Pod every task would get.
    """
    from helm_python import HelmError

    try:
        rendered = render_airflow_chart(values)
    except HelmError as exc:
        return [], [f"render: {str(exc)[:800]}"]
    docs = [d for name, text in rendered.items() if name.endswith(".yaml") for d in yaml.safe_load_all(text) if d]
    problems = [p for d in docs for p in manifest_problems(d)]
    config = next((d for d in docs if d["kind"] == "ConfigMap" and "airflow.cfg" in d.get("data", {})), None)
    if config is None:
        return docs, [*problems, "no ConfigMap with airflow.cfg"]
    try:
        pod = yaml.safe_load(config["data"]["pod_template_file.yaml"])
    except (KeyError, yaml.YAMLError) as exc:
        return docs, [*problems, f"worker pod template: {str(exc)[:500]}"]
    return docs, [*problems, *(f"worker pod template: {p}" for p in manifest_problems(pod))]


# ------------------------------------------------------------------------------- Airflow Helm values


def test_airflow_values_validate_against_chart_schema() -> None:
    values = _load_yaml(AIRFLOW_VALUES)
    assert schema_errors(values, _schema("airflow-chart-values.schema.json")) == []

    assert values["executor"] == "KubernetesExecutor"
    assert values["images"]["airflow"]["repository"] and values["images"]["airflow"]["tag"]
    assert values["dags"]["gitSync"]["enabled"] is True
    logging = values["config"]["logging"]
    assert logging["remote_logging"] == "True"
    assert logging["remote_base_log_folder"].startswith("s3://") and logging["remote_log_conn_id"]
    assert any(s["envName"] == f"AIRFLOW_CONN_{logging['remote_log_conn_id'].upper()}" for s in values["secret"])
    assert "secretRef" in values["extraEnvFrom"]
    # the default task pod: one container "base" with explicit resources
    template = values["podTemplate"]
    assert "kind: Pod" in template and "- name: base" in template and "resources:" in template


def _airflow_cfg(docs: list[dict[str, Any]]) -> configparser.ConfigParser:
    config = next(d for d in docs if d["kind"] == "ConfigMap" and "airflow.cfg" in d.get("data", {}))
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(config["data"]["airflow.cfg"])
    return cfg


def test_airflow_chart_renders_valid_manifests_with_our_settings() -> None:
    values = _load_yaml(AIRFLOW_VALUES)
    docs, problems = airflow_chart_problems(values)
    assert problems == []
    by_kind_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}

    # airflow.cfg: the executor and the sizing of a continental run
    cfg = _airflow_cfg(docs)
    assert cfg["core"]["executor"] == "KubernetesExecutor"
    for section, options in values["config"].items():
        for option, value in options.items():
            assert cfg[section][option] == str(value), f"[{section}] {option}"
    assert cfg["kubernetes_executor"]["namespace"] == "terracover"
    # the chart's Airflow 3 default is the FAB auth manager (and a FAB create-user job): the image must carry FAB
    if "apache-airflow-providers-fab" not in (ROOT / "requirements.txt").read_text():
        assert "fab" not in cfg["core"]["auth_manager"].lower()
        assert not any(kind == "Job" and "create-user" in name for kind, name in by_kind_name)

    # the four Airflow 3 components, each with the resources from our values; no Celery, Redis or bundled database
    workloads = {
        name.removeprefix("airflow-"): d
        for (kind, name), d in by_kind_name.items()
        if kind in {"Deployment", "StatefulSet"}
    }
    assert set(workloads) == AIRFLOW_WORKLOADS
    section = {"scheduler": "scheduler", "api-server": "apiServer", "dag-processor": "dagProcessor"}
    section["triggerer"] = "triggerer"
    for name, workload in workloads.items():
        spec = workload["spec"]["template"]["spec"]
        main = next(c for c in spec["containers"] if c["name"] == name)
        assert main["resources"] == values[section[name]]["resources"], name
        assert main["image"] == f"{values['images']['airflow']['repository']}:{values['images']['airflow']['tag']}"
    # git-sync v4 (the chart's image) follows GITSYNC_REF: our branch, not the chart's default
    for name, workload in workloads.items():
        spec = workload["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            if c["name"].startswith("git-sync"):
                ref = next(e["value"] for e in c["env"] if e["name"] == "GITSYNC_REF")
                assert ref == values["dags"]["gitSync"]["branch"], f"{name}/{c['name']}"
    # every container of every pod the chart starts asks for CPU and memory (none is best-effort)
    for (kind, name), d in by_kind_name.items():
        if kind in {"Deployment", "StatefulSet", "Job"}:
            spec = d["spec"]["template"]["spec"]
            for c in spec.get("initContainers", []) + spec["containers"]:
                assert {"cpu", "memory"} <= set(c.get("resources", {}).get("requests", {})), f"{name}/{c['name']}"

    # the api-server reads the passwords of the simple auth manager from the mounted Secret
    api = workloads["api-server"]["spec"]["template"]["spec"]
    mounts = next(c for c in api["containers"] if c["name"] == "api-server")["volumeMounts"]
    passwords = Path(values["config"]["core"]["simple_auth_manager_passwords_file"])
    assert any(m["mountPath"] == str(passwords.parent) for m in mounts)

    # the worker pod template every task gets: our container, resources, env and the chart's names
    config = next(d for d in docs if d["kind"] == "ConfigMap" and "airflow.cfg" in d.get("data", {}))
    pod = yaml.safe_load(config["data"]["pod_template_file.yaml"])
    assert cfg["kubernetes_executor"]["pod_template_file"].endswith("/pod_template_file.yaml")
    assert pod["metadata"]["labels"]["terracover.io/profile"] == "default"
    base = next(c for c in pod["spec"]["containers"] if c["name"] == "base")
    assert base["resources"] == values["workers"]["resources"]
    env = {e["name"]: e.get("value") for e in base["env"]}
    assert all(env[e["name"]] == e["value"] for e in values["env"])
    assert {"terracover-config", "terracover-env"} <= {
        (ref.get("configMapRef") or ref.get("secretRef"))["name"] for ref in base["envFrom"]
    }
    assert ("ServiceAccount", pod["spec"]["serviceAccountName"]) in by_kind_name
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config["metadata"]["name"]
    sync = {e["name"]: e.get("value") for e in pod["spec"]["initContainers"][0]["env"]}
    assert sync["GITSYNC_REF"] == values["dags"]["gitSync"]["branch"]

    # the heavy pod template (not rendered by the chart) names what the chart creates
    heavy = _load_yaml(ROOT / "helm-values" / "pod-templates" / "heavy-composite.yaml")
    assert heavy["spec"]["serviceAccountName"] == pod["spec"]["serviceAccountName"]
    heavy_volumes = {v["name"]: v for v in heavy["spec"]["volumes"]}
    assert heavy_volumes["config"]["configMap"]["name"] == config["metadata"]["name"]

    # pools: imported by the migrate job from the copy the image bakes; the pool names the tasks use exist
    migrate = next(d for (kind, _), d in by_kind_name.items() if kind == "Job" and "migrat" in d["metadata"]["name"])
    assert "airflow pools import /opt/airflow/pools/airflow-pools.json" in " ".join(
        migrate["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    pools = json.loads(AIRFLOW_POOLS.read_text())
    assert {env["TERRACOVER_OBJECT_STORE_POOL"], env["TERRACOVER_CATALOG_POOL"]} <= set(pools)
    assert max(p["slots"] for p in pools.values()) <= int(cfg["core"]["parallelism"])


def test_airflow_chart_render_rejects_broken_values() -> None:
    """Negative controls: a resource that is no quantity (values, pod template) and a mis-indented pod template."""
    values = _load_yaml(AIRFLOW_VALUES)
    values["scheduler"]["resources"]["requests"]["cpu"] = {"cores": 0.5}  # a quantity is a string or a number
    _, problems = airflow_chart_problems(values)
    assert any("/scheduler/resources/requests/cpu" in p for p in problems), problems  # the chart's schema

    values = _load_yaml(AIRFLOW_VALUES)
    values["podTemplate"] = values["podTemplate"].replace("cpu: 500m", "cpu: [500m]")
    _, problems = airflow_chart_problems(values)
    assert any(p.startswith("worker pod template: Pod/") for p in problems), problems  # Kubernetes' schema

    values = _load_yaml(AIRFLOW_VALUES)
    values["triggerer"]["resources"]["limits"]["memory"] = "1 GiB"  # a string, so the schemas let it through
    _, problems = airflow_chart_problems(values)
    assert any("airflow-triggerer" in p and "'1 GiB' is not a quantity" in p for p in problems), problems

    values = _load_yaml(AIRFLOW_VALUES)
    values["podTemplate"] = values["podTemplate"].replace("| nindent 8 }}", "| nindent 10 }}")
    _, problems = airflow_chart_problems(values)
    assert any(p.startswith("worker pod template:") for p in problems), problems


def test_heavy_pod_template_is_baked_and_consistent() -> None:
    """The DAG's executor_config names $TERRACOVER_HEAVY_POD_TEMPLATE: the image must contain that file."""
    values = _load_yaml(AIRFLOW_VALUES)
    env = {e["name"]: e["value"] for e in values["env"]}
    path = env["TERRACOVER_HEAVY_POD_TEMPLATE"]
    assert path.startswith("/opt/airflow/pod_templates/")
    assert (ROOT / "helm-values" / "pod-templates" / Path(path).name).is_file()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY --chown=airflow:0 helm-values/pod-templates/ /opt/airflow/pod_templates/" in dockerfile
    assert f"TERRACOVER_HEAVY_POD_TEMPLATE={path}" in dockerfile

    pod = _load_yaml(ROOT / "helm-values" / "pod-templates" / Path(path).name)
    assert [c["name"] for c in pod["spec"]["containers"]] == ["base"]
    sync = {e["name"]: e.get("value") for e in pod["spec"]["initContainers"][0]["env"]}
    assert sync["GITSYNC_REPO"] == values["dags"]["gitSync"]["repo"]
    assert sync["GITSYNC_REF"] == values["dags"]["gitSync"]["branch"]


@pytest.mark.parametrize("path", POD_TEMPLATES, ids=lambda p: p.name)
def test_pod_templates_are_valid_pods(path: Path) -> None:
    doc = _load_yaml(path)
    assert doc["kind"] == "Pod"
    assert manifest_problems(doc) == []


# ------------------------------------------------------------------------------------ docker compose


def test_compose_validates_against_spec_and_dependencies_hold() -> None:
    doc = _load_yaml(COMPOSE)
    assert schema_errors(doc, _schema("compose-spec.json")) == []
    assert compose_problems(doc) == []

    services = doc["services"]
    expected = {
        "postgres", "seaweedfs", "s3-init", "mlflow", "pgstac-migrate", "stac-api", "airflow-init",
        "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "serving",
        "prometheus", "alertmanager", "grafana",
    }  # fmt: skip
    assert expected <= set(services)
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["serving"]["build"]["dockerfile"] == "Dockerfile.serving"


def test_compose_files_and_dockerfiles_exist() -> None:
    doc = _load_yaml(COMPOSE)
    for name, svc in doc["services"].items():
        build = svc.get("build")
        if build:
            context = ROOT / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} does not exist"


def test_compose_variables_are_declared_in_env_example() -> None:
    doc = _load_yaml(COMPOSE)
    used = compose_variables(doc)
    declared = env_example_names(ENV_EXAMPLE.read_text())
    assert used - declared == set()
    for var in (
        "TERRACOVER_STORE_URI", "TERRACOVER_CATALOG_URI", "TERRACOVER_MLFLOW_TRACKING_URI", "TERRACOVER_SERVING_URL",
        "TERRACOVER_RELOAD_TOKEN", "TERRACOVER_PROMETHEUS_URL", "TERRACOVER_ALERTMANAGER_URL", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
    ):  # fmt: skip
        assert var in used and var in declared, var
    # secrets have no value in the example: compose fails fast (${VAR:?}) until .env sets them
    example = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M))
    for var in ("POSTGRES_PASSWORD", "AWS_SECRET_ACCESS_KEY", "AIRFLOW_FERNET_KEY", "TERRACOVER_RELOAD_TOKEN"):
        assert example[var] == "", f"{var} must not carry a value in .env.example"
        assert re.search(rf"\$\{{{var}:\?", COMPOSE.read_text()), f"{var} is not required (:?) in compose"


# ------------------------------------------------------------------------------- serving Helm chart


def test_serving_chart_lints() -> None:
    helm = pytest.importorskip("helm_python")
    report = helm.lint(str(SERVING_CHART), strict=True, kube_version=f"v{K8S_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_serving_chart_renders_valid_manifests() -> None:
    docs = render_serving_chart()
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service", "HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule"}
    assert [p for d in docs for p in manifest_problems(d)] == []

    assert kinds["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 3000
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert kinds["ServiceMonitor"]["spec"]["endpoints"][0]["path"] == "/metrics"

    # without autoscaling: a fixed replica count and no HPA
    fixed = render_serving_chart({"autoscaling": {"enabled": False}, "replicaCount": 3})
    assert "HorizontalPodAutoscaler" not in {d["kind"] for d in fixed}
    assert next(d for d in fixed if d["kind"] == "Deployment")["spec"]["replicas"] == 3


def test_chart_rules_copy_equals_source() -> None:
    if not RULES_SOURCE.exists():
        pytest.skip(f"{RULES_SOURCE.relative_to(ROOT)} not written yet")
    assert RULES_COPY.read_bytes() == RULES_SOURCE.read_bytes(), (
        f"refresh the chart's copy: cp {RULES_SOURCE.relative_to(ROOT)} {RULES_COPY.relative_to(ROOT)}"
    )


def test_prometheus_rule_groups_pass_promtool(tmp_path: Path) -> None:
    rule = next(d for d in render_serving_chart() if d["kind"] == "PrometheusRule")
    groups = rule["spec"]["groups"]
    assert groups and {"TerracoverLowConfidence"} <= {r.get("alert") for g in groups for r in g["rules"]}
    extracted = tmp_path / "prometheusrule.rules.yml"
    extracted.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    proc = promtool("check", "rules", str(extracted))
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------------------- images and Prometheus


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint(dockerfile: Path) -> None:
    assert hadolint_problems(dockerfile) == ""


def test_dockerfiles_follow_the_contract() -> None:
    airflow = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.2-python3\.11$", airflow, re.M)
    assert "pip install --no-cache-dir" in airflow and "-r /opt/airflow/requirements.txt" in airflow
    serving = (ROOT / "Dockerfile.serving").read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm", serving, re.M)
    assert "requirements-serving.txt" in serving and "EXPOSE 3000" in serving
    assert re.search(r"^HEALTHCHECK .*\n?.*urllib.*/readyz", serving, re.M)
    assert '"terracover.serving.service:LandCover", "--host", "0.0.0.0", "--port", "3000"' in serving
    assert "PYTHONPATH=/app/include" in serving and "BENTOML_DO_NOT_TRACK=true" in serving
    for text in (airflow, serving):
        users = re.findall(r"^USER (\S+)", text, re.M)
        assert users and users[-1].split(":")[0] not in {"0", "root"}, "the image must end as a non-root user"


def test_serving_lock_is_lean_and_consistent() -> None:
    def pins(path: Path) -> dict[str, str]:
        return dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", path.read_text(), re.M))

    serving, dev = pins(ROOT / "requirements-serving.txt"), pins(ROOT / "requirements" / "dev.txt")
    assert serving["bentoml"] == "1.4.39" and serving["mlflow-skinny"] == "3.17.2"
    assert "apache-airflow" not in serving and "mlflow" not in serving
    assert {k: (v, dev[k]) for k, v in serving.items() if k in dev and dev[k] != v} == {}


def test_compose_prometheus_config(tmp_path: Path) -> None:
    proc = promtool("check", "config", str(COMPOSE_PROMETHEUS))
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # the same config with the rule glob pointed at the repository's rules, as mounted in the container
    config = _load_yaml(COMPOSE_PROMETHEUS)
    [pattern] = config["rule_files"]
    assert pattern.startswith("/etc/prometheus/rules/")
    local = ROOT / "include" / "monitoring" / "rules" / Path(pattern).name
    config["rule_files"] = [str(local)]
    if RULES_SOURCE.exists():
        assert RULES_SOURCE in local.parent.glob(local.name), f"{pattern} does not match {RULES_SOURCE.name}"
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = promtool("check", "config", str(copy))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_other_values_and_grafana_provisioning() -> None:
    """Charts without an offline schema (MLflow, SeaweedFS, kube-prometheus-stack): parse and cross-check names."""
    for path in sorted((ROOT / "helm-values").glob("*.yaml")):
        assert isinstance(_load_yaml(path), dict), path
    s3 = _load_yaml(ROOT / "helm-values" / "s3.yaml")
    buckets = {b["name"] for b in s3["filer"]["s3"]["createBuckets"]}
    mlflow = _load_yaml(ROOT / "helm-values" / "mlflow.yaml")
    airflow = _load_yaml(AIRFLOW_VALUES)
    assert mlflow["artifactRoot"]["s3"]["bucket"] in buckets
    assert airflow["config"]["logging"]["remote_base_log_folder"].split("/")[2] in buckets

    provisioning = ROOT / "deploy" / "compose" / "grafana" / "provisioning"
    datasources = _load_yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    uids = {d["uid"] for d in datasources}
    for dashboard in sorted((ROOT / "include" / "monitoring" / "grafana" / "dashboards").glob("*.json")):
        used = set(re.findall(r'"datasource":\s*\{[^}]*"uid":\s*"([^"$]+)"', dashboard.read_text()))
        assert used <= uids, f"{dashboard.name} uses data sources {used - uids} that compose does not provision"
    [provider] = _load_yaml(provisioning / "dashboards" / "terracover.yaml")["providers"]
    grafana_mounts = _load_yaml(COMPOSE)["services"]["grafana"]["volumes"]
    assert any(m.endswith(f":{provider['options']['path']}:ro") for m in grafana_mounts)


# ------------------------------------------------------------------- negative controls: the checks bite


def test_checks_reject_broken_inputs(tmp_path: Path) -> None:
    values = _load_yaml(AIRFLOW_VALUES)
    values["executor"] = "NoSuchThing"
    values["images"]["airflow"]["tagg"] = "typo"
    assert len(schema_errors(values, _schema("airflow-chart-values.schema.json"))) >= 2

    doc = _load_yaml(COMPOSE)
    doc["services"]["serving"]["depends_on"]["ghost"] = {"condition": "service_healthy"}
    doc["services"]["prometheus"]["healthcheck"] = {"disable": True}
    doc["services"]["grafana"]["image"] = "grafana/grafana"
    problems = compose_problems(doc)
    assert any("ghost" in p for p in problems)
    assert any("prometheus has no healthcheck" in p for p in problems)
    assert any("not pinned" in p for p in problems)
    doc["services"]["serving"]["ports"] = "3000"  # not a list
    assert schema_errors(doc, _schema("compose-spec.json"))

    deployment = next(d for d in render_serving_chart() if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {"no": "dict"}
    assert manifest_problems(deployment)

    bad_dockerfile = tmp_path / "Dockerfile"
    bad_dockerfile.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    assert hadolint_problems(bad_dockerfile)

    bad_rules = tmp_path / "bad.rules.yml"
    bad_rules.write_text("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(\n")
    assert promtool("check", "rules", str(bad_rules)).returncode != 0


def test_bento_builds_with_the_service_page_and_pins(tmp_path: Path) -> None:
    """``bentoml build`` from the repository root packages the service, its map page and the serving pins."""
    import os

    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true"}
    bentoml = str(Path(sys.executable).parent / "bentoml")
    cmd = [bentoml, "build", "."]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (bento,) = (tmp_path / "bentos" / "terracover").glob("*/bento.yaml")
    meta = yaml.safe_load(bento.read_text())
    assert meta["service"] == "terracover.serving.service:LandCover"
    src = bento.parent / "src" / "include" / "terracover"
    assert (src / "serving" / "service.py").exists() and (src / "serving" / "static" / "index.html").exists()
    reqs = (bento.parent / "env" / "python" / "requirements.txt").read_text()
    assert "bentoml==1.4.39" in reqs and "apache-airflow" not in reqs
