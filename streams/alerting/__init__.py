"""Alerting as code: thresholds in one place, Prometheus alert rules rendered from them.

``corridor alerts render`` writes ``deploy/prometheus/alerts/`` (one file per area);
the rendered files are checked in and a test keeps them in sync with this package.
"""
