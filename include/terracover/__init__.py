"""terracover: yearly land-cover models from Sentinel-2 and DEM data, kept current by Airflow.

This package is the domain library. It never imports Airflow or BentoML (see docs/architecture.md section 2), so
the same code runs in DAG tasks, in the prediction service, in benchmarks and in plain tests.
"""

__version__ = "0.1.0"
