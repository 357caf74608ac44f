"""Reports over cjepa studies (HTML + PNG + markdown) and Grafana dashboards for live Ray metrics.

Reads what the sweep layer writes (the Parquet results table, ``study.json``, the MLflow
experiment and the trials' checkpoints); never writes into the study except ``report/`` and the
report artifacts on the study's MLflow parent run. Entry point: ``cjepa report`` (report.py).
"""
