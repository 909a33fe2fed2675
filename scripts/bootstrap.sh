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
    # The tests start Prometheus themselves, on free loopback ports: the packages' own
    # services are not started (policy-rc.d refuses them for the install), and nothing
    # already running on the machine is stopped.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
      trap 'rm -f "$policy"' EXIT
    fi
    apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
  else
    echo "promtool not found: run as root or 'apt-get install prometheus prometheus-alertmanager'" >&2
  fi
fi
