"""Alerting as code: thresholds in one place, Prometheus alert rules rendered from them.

``corridor alerts render`` writes ``deploy/prometheus/alerts/`` (one file per area) and
``deploy/k8s/base/prometheus-rules.yaml`` (every rule file as one PrometheusRule,
``kubernetes.py``); the rendered files are checked in and tests keep them in sync.
"""
