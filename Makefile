# Two commands: `make run` (install, then the main job) and `make test` (install, then every test).
.PHONY: run test install lint unit integration soak clean lock image

install:
	WITH_PROMETHEUS=0 WITH_KAFKA=0 EXTRAS=broker,rocksdb,dashboards ./scripts/bootstrap.sh

run: install
	.venv/bin/corridor run

# Puts Prometheus, Alertmanager, docker-compose and Apache Kafka into .tools/ (no package installed,
# no service touched) and requires the Prometheus tests to run: a missing binary fails them instead
# of skipping them (the Kafka tests never skip).
# The lint and the unit tests run beside the integration tests (scripts/test.sh says why).
test:
	./scripts/bootstrap.sh
	./scripts/test.sh

# Lint (ruff, with the security and private-access rules), types (mypy, strict on the pure
# core, the schemas and the SDK) and the import contracts (the pure core imports no faust,
# aiokafka, click or rich; layers only import downwards): all configured in pyproject.toml.
lint:
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/lint-imports

unit:
	.venv/bin/python -m pytest -q tests/unit

integration:
	.venv/bin/python -m pytest -q -m 'not limits and not measure and not extended' tests/integration

# Rounds of replay + SIGKILL on both stores, checked exactly (not part of `make test`).
soak:
	WITH_PROMETHEUS=0 WITH_KAFKA=0 ./scripts/bootstrap.sh
	.venv/bin/python -m tests.soak $(SOAK_ARGS)

clean:
	rm -rf .venv .tools .corridor-state *.egg-info .mypy_cache .ruff_cache .import_linter_cache

# `corridor bench` on fresh embedded brokers (docs/benchmarks.md); options in BENCH_ARGS, e.g.
# make bench BENCH_ARGS="--events 2000000 --only batched"
.PHONY: bench
bench: install
	.venv/bin/corridor bench $(BENCH_ARGS)

# Every rendered file from its code (a test checks each): the rules and the PrometheusRule, the
# dashboards and their ConfigMap, the thresholds file of every key, and the dev-thresholds overlay's
# rules and dashboards from its thresholds.yaml.
.PHONY: render
render:
	.venv/bin/corridor alerts render
	.venv/bin/corridor dashboards build
	.venv/bin/corridor alerts config > deploy/config/thresholds.yaml
	overlay=deploy/k8s/overlays/dev-thresholds; out=$$(mktemp -d) \
	  && .venv/bin/corridor alerts render --config $$overlay/thresholds.yaml $$out/alerts --rules-dir $$out/rules \
	       --prometheus-rule $$overlay/prometheus-rules.yaml \
	  && .venv/bin/corridor dashboards build --config $$overlay/thresholds.yaml --out $$out/dashboards \
	       --configmap $$overlay/grafana-dashboards.yaml \
	  && rm -r $$out

# The hashed lock files deploy/docker/Dockerfile installs from (docs/release.md): requirements/runtime.lock
# (the dependencies and the rocksdb extra of pyproject.toml) and requirements/build.lock (its build
# backend), resolved for CPython 3.11 on x86_64 Linux, the image's platform, whatever machine runs this.
# uv is fetched into .tools/uv. Pins already in a lock are kept while they fit pyproject.toml;
# make lock LOCK_ARGS=--upgrade takes the newest versions that fit.
UV_VERSION = 0.13.8
UV = .tools/uv/bin/uv
LOCK = $(UV) pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	--custom-compile-command "make lock" $(LOCK_ARGS)
lock:
	@$(UV) --version 2>/dev/null | grep -q "^uv $(UV_VERSION) " || \
		python3 -m pip install --quiet --disable-pip-version-check --upgrade --target .tools/uv "uv==$(UV_VERSION)"
	$(LOCK) --extra rocksdb pyproject.toml -o requirements/runtime.lock
	python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(LOCK) - -o requirements/build.lock

# The runtime image (deploy/docker/Dockerfile, docs/release.md), its OCI labels given the release of
# pyproject.toml, the commit and the build time. IMAGE names it: make image IMAGE=registry/corridor-monitor:0.1.0
IMAGE ?= corridor-monitor:local
image:
	docker build -f deploy/docker/Dockerfile -t $(IMAGE) \
		--build-arg VERSION=$$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])') \
		--build-arg REVISION=$$(git rev-parse HEAD) \
		--build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) .
