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

for year in $YEARS; do
  step "build_training_set $year (labels sampled from the stacks, Great Expectations gate)"
  dag build_training_set --conf "{\"year\": $year}"
done

API_PORT=${DEMO_AIRFLOW_PORT:-28080}
SERVING_PORT=${DEMO_SERVING_PORT:-3000}
export TERRACOVER_SERVING_URL="http://127.0.0.1:$SERVING_PORT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_http() {  # url, what, seconds
  for _ in $(seq 1 "$3"); do curl -sf -o /dev/null "$1" && return 0; sleep 1; done
  echo "demo: $2 did not come up at $1"; exit 1
}

step "Airflow api-server on 127.0.0.1:$API_PORT (the approval gate is answered through its REST API)"
AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$API_PORT AIRFLOW__API__BASE_URL="http://127.0.0.1:$API_PORT" \
  setsid airflow api-server --host 127.0.0.1 --port "$API_PORT" --workers 1 >"$TERRACOVER_HOME/logs/api-server.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$API_PORT/api/v2/monitor/health" "airflow api-server" 180
echo "   ready: http://127.0.0.1:$API_PORT (Required Actions lists pending approvals)"

for year in $YEARS; do
  step "train_model $year: train, evaluate, register in MLflow, compare, ask a human (the demo operator approves)"
  python scripts/demo_approve.py "http://127.0.0.1:$API_PORT" train_model Approve &
  APPROVER=$!
  dag train_model --conf "{\"year\": $year}"
  kill "$APPROVER" 2>/dev/null || true
done

step "Serving: bentoml serve terracover.serving.service:LandCover on 127.0.0.1:$SERVING_PORT"
setsid bentoml serve terracover.serving.service:LandCover --host 127.0.0.1 --port "$SERVING_PORT" \
  >"$TERRACOVER_HOME/logs/serving.log" 2>&1 &
PIDS+=($!)
wait_http "$TERRACOVER_SERVING_URL/readyz" "the prediction service" 120
for year in $YEARS; do
  python - "$year" <<'PY'
import json, sys, httpx
from terracover.settings import get_settings
w, s, e, n = get_settings().region_bbox
year = int(sys.argv[1])
aoi = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
url = get_settings().serving_url
r = httpx.post(f"{url}/predict", json={"aoi": aoi, "year": year}, timeout=600)
a = r.json()
if r.status_code != 200:
    sys.exit(f"demo: POST /predict {year} -> {r.status_code}: {a}")
print(f"   POST /predict {year}: {a['elapsed_ms']:.0f} ms, model {a['model']['name']} v{a['model']['version']},"
      f" mean confidence {a['avg_confidence']:.3f}")
for name, ha in sorted(a["class_areas_ha"].items(), key=lambda kv: -kv[1]):
    print(f"     {name:<22} {ha:>9.2f} ha")
print(f"     {'(no clear observation)':<22} {a['unclassified_ha']:>9.2f} ha: pixels cloudy in every date of a season")
print(f"   map: {a['raster_url']}\n   provenance: STAC item {a['prediction_id']} in terracover-predictions")
metrics = httpx.get(f"{url}/metrics", timeout=30).text.splitlines()
print("   " + "\n   ".join(m for m in metrics if m.startswith(("terracover_predictions_total", "terracover_pixels"))))
PY
done
echo "   map page: $TERRACOVER_SERVING_URL/  (draw an AOI, pick a year)"

for year in $YEARS; do
  step "retrain_on_alert $year (webhook path: TerracoverLowConfidence given in the conf)"
  dag retrain_on_alert --conf "{\"alerts\": [{\"labels\": {\"alertname\": \"TerracoverLowConfidence\", \"year\": \"$year\"}}]}"
  python -c "
from terracover.store import open_store; import json
s = open_store(); k = sorted(s.list('monitoring/decisions/$year/'))[-1]; d = json.loads(s.get_bytes(k))
print('   decision:', d['reason'])"
done

step "Done"
python -m terracover.report
if [ -n "${DEMO_KEEP_SERVING:-}" ]; then
  echo "serving stays up at $TERRACOVER_SERVING_URL (Ctrl-C to stop)"; wait
fi
