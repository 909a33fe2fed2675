#!/usr/bin/env bash
# Creates .venv with the project and what the tests need; installs Prometheus with
# apt-get when missing and running as root. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-test,rocksdb,dashboards}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS}]"

if [ "${WITH_PROMETHEUS:-1}" = 1 ] && ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
    # The Debian package starts services of its own; the tests start their own Prometheus.
    (systemctl stop prometheus prometheus-node-exporter prometheus-alertmanager 2>/dev/null || true)
    (pkill -x prometheus 2>/dev/null || true)
  else
    echo "promtool not found: run as root or 'apt-get install prometheus prometheus-alertmanager'" >&2
  fi
fi
