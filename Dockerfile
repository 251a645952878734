# syntax=docker/dockerfile:1
# terracover Airflow image: api-server, scheduler, dag-processor, triggerer and the KubernetesExecutor's task pods.
# Build: docker build -t terracover/airflow:0.1.0 --build-arg GIT_SHA="$(git rev-parse HEAD)" .
FROM apache/airflow:3.3.2-python3.11

# The official image refuses `pip install` as root: everything runs as its `airflow` user, numeric (uid 50000,
# gid 0) so that Kubernetes can enforce runAsNonRoot.
USER 50000:0
WORKDIR /opt/airflow

# 1. Dependencies in their own layer, rebuilt only when the lock file changes. requirements.txt is compiled together
#    with apache-airflow==3.3.2 (Airflow's constraints file cannot be fetched offline; the lock pins every transitive
#    version instead); naming apache-airflow=="${AIRFLOW_VERSION}" as well keeps pip from ever moving Airflow itself.
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/airflow/requirements.txt

# 2. Code. The domain library is imported from include/ through PYTHONPATH (no build step, one copy of the code);
#    plugins/ is on sys.path by Airflow itself. On Kubernetes gitSync may overlay dags/ (helm-values/airflow.yaml).
ARG GIT_SHA=unknown
ENV PYTHONPATH=/opt/airflow/include \
    TERRACOVER_GIT_SHA=${GIT_SHA} \
    TERRACOVER_HEAVY_POD_TEMPLATE=/opt/airflow/pod_templates/heavy-composite.yaml \
    MLFLOW_DISABLE_TELEMETRY=true \
    BENTOML_DO_NOT_TRACK=true \
    DO_NOT_TRACK=1
# /opt/airflow/auth: the compose stack keeps the UI password file there (a named volume inherits this ownership).
RUN mkdir -p /opt/airflow/auth
COPY --chown=airflow:0 helm-values/pod-templates/ /opt/airflow/pod_templates/
COPY --chown=airflow:0 helm-values/airflow-pools.json /opt/airflow/pools/airflow-pools.json
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
