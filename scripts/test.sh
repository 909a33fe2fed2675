#!/usr/bin/env bash
# The tests of `make test`, after the bootstrap: lint and the unit tests run beside the
# integration tests. The integration tests mostly wait (on brokers, workers, Prometheus,
# timeouts), and the machine is idle for much of their time, so the three minutes of lint and
# unit tests cost them little; the unit tests need no broker and no port. Their output comes
# after the integration tests'. Fails when either part fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export CORRIDOR_REQUIRE_PROMETHEUS=${CORRIDOR_REQUIRE_PROMETHEUS:-1}
MARKERS='not limits and not measure and not extended'

side_log=$(mktemp)
trap 'rm -f "$side_log"' EXIT
(
  make --no-print-directory lint &&
    .venv/bin/python -m pytest -q -p no:cacheprovider --durations=10 -m "$MARKERS" tests/unit
) >"$side_log" 2>&1 &
side=$!

.venv/bin/python -m pytest -q --durations=30 -m "$MARKERS" tests/integration
integration=$?
wait "$side"
side_status=$?

echo
echo "--- lint and unit tests (run beside the integration tests) ---"
cat "$side_log"
if [ "$integration" != 0 ] || [ "$side_status" != 0 ]; then
  echo "make test failed: integration tests exit $integration, lint and unit tests exit $side_status" >&2
  exit 1
fi
