-- terracover: one PostgreSQL (postgis/postgis image) holds three databases. Run once, on an empty data volume, by
-- 20-terracover.sh, which passes the role passwords from the environment as psql variables.
\set ON_ERROR_STOP on

-- Airflow metadata database, owned by its own role.
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;

-- MLflow tracking and model registry, owned by its own role.
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;

-- pgSTAC catalog. `pypgstac migrate` (compose service pgstac-migrate) creates the pgstac schema and its roles; the
-- extensions it needs are created here, up front, by the superuser.
CREATE DATABASE pgstac;
\connect pgstac
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS btree_gist;
