#!/usr/bin/env bash
# `make demo`: the terracover lifecycle, offline, on embedded defaults, under real Airflow (`airflow dags test`).
# State lives in $TERRACOVER_HOME (default .terracover/demo); re-running resumes and skips finished work.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-.venv}
export PATH="$ROOT/$VENV/bin:$PATH"
export TERRACOVER_HOME=${TERRACOVER_HOME:-$ROOT/.terracover/demo}
export TERRACOVER_SCENE_SOURCE=${TERRACOVER_SCENE_SOURCE:-simulator}
export TERRACOVER_DEM_SOURCE=${TERRACOVER_DEM_SOURCE:-simulator}
YEARS=${DEMO_YEARS:-2023}

export AIRFLOW_HOME="$TERRACOVER_HOME/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=4
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export PYTHONPATH="$ROOT:$ROOT/plugins${PYTHONPATH:+:$PYTHONPATH}"
export MLFLOW_DISABLE_TELEMETRY=true BENTOML_DO_NOT_TRACK=true
mkdir -p "$AIRFLOW_HOME"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
dag() {  # run one DAG with airflow dags test; keep its log; fail loudly with the log's tail
  local id=$1; shift
  local log="$TERRACOVER_HOME/logs/$id-$(date +%s).log"
  mkdir -p "$(dirname "$log")"
  local t0=$SECONDS
  if ! airflow dags test "$id" "$@" >"$log" 2>&1 || grep -q "state=failed" "$log"; then
    tail -n 60 "$log"; echo "demo: $id failed (full log: $log)"; exit 1
  fi
  echo "   $id ok in $((SECONDS - t0)) s (log: $log)"
}

step "Airflow metadata DB ($AIRFLOW_HOME)"
airflow db migrate >"$TERRACOVER_HOME/airflow-migrate.log" 2>&1 && echo "   migrated"

for year in $YEARS; do
  step "Simulate the public archive for $year (Sentinel-2 L2A scenes, DEM, labels)"
  python -m terracover.simulate --years "$year"
  step "ingest_scenes $year"
  dag ingest_scenes --conf "{\"year\": $year}"
done
step "ingest_dem"
dag ingest_dem
for year in $YEARS; do
  step "build_composites $year"
  dag build_composites --conf "{\"year\": $year}"
done

step "Done"
python -m terracover.report
