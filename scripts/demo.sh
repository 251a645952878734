#!/usr/bin/env bash
# `make demo`: the terracover lifecycle on a live Airflow (api-server, scheduler, dag-processor, triggerer;
# LocalExecutor), offline, on embedded defaults. One trigger of ingest_scenes per year; the assets carry the
# chain to train_model, whose approval the demo operator answers through the REST API the UI uses
# (DEMO_INTERACTIVE=1: you answer in the UI). State lives in $TERRACOVER_HOME (default .terracover/demo);
# a re-run finds nothing new to ingest and goes straight to serving.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-.venv}
export PATH="$ROOT/$VENV/bin:$PATH"
export TERRACOVER_HOME=${TERRACOVER_HOME:-$ROOT/.terracover/demo}
export TERRACOVER_SCENE_SOURCE=${TERRACOVER_SCENE_SOURCE:-simulator}
export TERRACOVER_DEM_SOURCE=${TERRACOVER_DEM_SOURCE:-simulator}
YEARS=${DEMO_YEARS:-2022 2023}
# A known land-cover change for the change report to find: from 2023 on this box is water (a new reservoir);
# DEMO_LAND_CHANGE= (empty) simulates none.
LAND_CHANGE=${DEMO_LAND_CHANGE--0.030,39.950,-0.022,39.956,4,2023}
API_PORT=${DEMO_AIRFLOW_PORT:-28080}
SERVING_PORT=${DEMO_SERVING_PORT:-3000}
AIRFLOW_URL="http://127.0.0.1:$API_PORT"
truthy() { case "${1:-}" in 1 | true | yes | on) return 0 ;; *) return 1 ;; esac; }

export AIRFLOW_HOME="$TERRACOVER_HOME/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}
# SQLite for one machine; PostgreSQL when the environment already points Airflow there.
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}
export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$API_PORT AIRFLOW__API__BASE_URL=$AIRFLOW_URL
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="$AIRFLOW_URL/execution/"
# Every component must sign and check task tokens with the same secret; the log servers get their own ports.
mkdir -p "$AIRFLOW_HOME" "$TERRACOVER_HOME/logs"
[ -f "$AIRFLOW_HOME/.jwt_secret" ] || python -c 'import secrets; print(secrets.token_hex(32))' >"$AIRFLOW_HOME/.jwt_secret"
export AIRFLOW__API_AUTH__JWT_SECRET=${AIRFLOW__API_AUTH__JWT_SECRET:-$(cat "$AIRFLOW_HOME/.jwt_secret")}
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=${DEMO_WORKER_LOG_PORT:-28793}
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=${DEMO_TRIGGER_LOG_PORT:-28794}
export PYTHONPATH="$ROOT:$ROOT/plugins${PYTHONPATH:+:$PYTHONPATH}"
export MLFLOW_DISABLE_TELEMETRY=true BENTOML_DO_NOT_TRACK=true
export TERRACOVER_SERVING_URL="http://127.0.0.1:$SERVING_PORT"
LOGS="$TERRACOVER_HOME/logs"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM # so that Ctrl-C or kill still stops every component through the EXIT trap
wait_http() { # url, what, seconds
  for _ in $(seq 1 "$3"); do curl -sf -o /dev/null "$1" && return 0; sleep 1; done
  echo "demo: $2 did not come up at $1 (logs: $LOGS)"; exit 1
}
start() { # name, command...: a component in its own session, logged to $LOGS/name.log
  local name=$1; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
}

if [ -z "${TERRACOVER_MLFLOW_TRACKING_URI:-}" ]; then
  MLFLOW_URL="http://127.0.0.1:${DEMO_MLFLOW_PORT:-28500}"
  step "MLflow server on $MLFLOW_URL (SQLite and artifacts under $TERRACOVER_HOME/mlflow)"
  mkdir -p "$TERRACOVER_HOME/mlflow"
  start mlflow mlflow server --host 127.0.0.1 --port "${DEMO_MLFLOW_PORT:-28500}" --workers 1 \
    --backend-store-uri "sqlite:///$TERRACOVER_HOME/mlflow/mlflow.db" \
    --artifacts-destination "$TERRACOVER_HOME/mlflow/artifacts" --serve-artifacts
  export TERRACOVER_MLFLOW_TRACKING_URI=$MLFLOW_URL
  wait_http "$MLFLOW_URL/health" "mlflow server" 300
  echo "   up: runs and the model registry at $MLFLOW_URL (the approval page links each run there)"
fi

step "Airflow on $AIRFLOW_URL (api-server, scheduler, dag-processor, triggerer; ${AIRFLOW__CORE__EXECUTOR})"
airflow db migrate >"$LOGS/airflow-migrate.log" 2>&1 && echo "   metadata DB migrated"
start api-server airflow api-server --host 127.0.0.1 --port "$API_PORT" --workers 1
start scheduler airflow scheduler
start dag-processor airflow dag-processor
start triggerer airflow triggerer
wait_http "$AIRFLOW_URL/api/v2/monitor/health" "airflow api-server" 300
PASSWORD=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" \
  "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated")
echo "   UI: $AIRFLOW_URL   login: admin / $PASSWORD   (logs: $LOGS)"
echo "   watch the chain under Dags, the approval under Browse -> Required Actions"

step "Serving: bentoml serve terracover.serving.service:LandCover on $TERRACOVER_SERVING_URL"
# its own BENTOML_HOME: every `bentoml serve` empties $BENTOML_HOME/prometheus_multiproc_dir when it starts, so
# another service on this machine sharing ~/bentoml would erase this one's metrics
BENTOML_HOME="$TERRACOVER_HOME/bentoml" start serving bentoml serve terracover.serving.service:LandCover \
  --host 127.0.0.1 --port "$SERVING_PORT"
wait_http "$TERRACOVER_SERVING_URL/livez" "the prediction service" 180
echo "   up; train_model's notify_serving reloads it when a champion is promoted"

for year in $YEARS; do
  step "Simulate the public archive for $year (Sentinel-2 L2A scenes, DEM, labels)"
  python -m terracover.simulate --years "$year" ${DEMO_DATES_PER_SEASON:+--dates-per-season "$DEMO_DATES_PER_SEASON"} \
    ${LAND_CHANGE:+--land-change="$LAND_CHANGE"}
  step "One trigger: ingest_scenes $year -> build_composites -> build_training_set -> train_model (assets)"
  python scripts/demo_chain.py "$AIRFLOW_URL" chain "$year"
done

wait_http "$TERRACOVER_SERVING_URL/readyz" "the prediction service with a model" 300
for year in $YEARS; do
  step "A prediction for the whole region, $year"
  python -m terracover.region_report "$year"  # class areas, classified share of the region, observed/filled split
done
read -r -a YEAR_LIST <<<"$YEARS"
if [ "${#YEAR_LIST[@]}" -ge 2 ]; then
  step "What changed between ${YEAR_LIST[0]} and ${YEAR_LIST[-1]} (POST /change; injected: ${LAND_CHANGE:-none})"
  python -m terracover.change_report "${YEAR_LIST[0]}" "${YEAR_LIST[-1]}"
fi
echo "   map page: $TERRACOVER_SERVING_URL/  (draw an AOI, pick a year)"

for year in $YEARS; do
  step "The alert path: retrain_on_alert $year (TerracoverLowConfidence through its webhook path)"
  python scripts/demo_chain.py "$AIRFLOW_URL" alert "$year"
  python -c "
from terracover.settings import get_settings; from terracover.store import open_store; import json
s = open_store(get_settings()); k = sorted(s.list('monitoring/decisions/$year/'))[-1]; d = json.loads(s.get_bytes(k))
print('   decision:', d['reason'])"
done

step "Done"
python -m terracover.report
echo "Airflow UI: $AIRFLOW_URL (admin / $PASSWORD): Dags shows every run of the chain; Browse -> Required Actions"
echo "the approval; the champion's MLflow run is linked from the approval page."
if truthy "${DEMO_KEEP_SERVING:-0}"; then
  echo "Airflow and serving stay up ($TERRACOVER_SERVING_URL); Ctrl-C to stop"; wait
fi
