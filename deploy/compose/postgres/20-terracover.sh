#!/bin/sh
# Runs once from /docker-entrypoint-initdb.d on an empty data volume (postgis/postgis image, after its own
# 10_postgis.sh): creates the airflow, mlflow and pgstac databases (init.sql). Passwords come from the environment.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v airflow_password="$AIRFLOW_DB_PASSWORD" \
  -v mlflow_password="$MLFLOW_DB_PASSWORD" \
  -f /docker-entrypoint-initdb.d/terracover/init.sql
