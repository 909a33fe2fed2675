"""Monitoring as code: thresholds in one place, recording and alert rules rendered from them.

``corridor alerts render`` writes ``deploy/prometheus/rules/`` (``records.py``: the recording
rules and the table of their names), ``deploy/prometheus/alerts/`` (one file per area) and
``deploy/k8s/base/prometheus-rules.yaml`` (every rule file as one PrometheusRule,
``kubernetes.py``); the dashboards read the same thresholds and rule names. The rendered
files are checked in and tests keep them in sync. How well the alerts catch drops is
measured by ``streams.evaluation``, which this package never imports.
"""
