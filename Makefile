# Two commands: `make run` (install, then the main job) and `make test` (install, then every test).
.PHONY: run test install unit integration soak bench clean

install:
	WITH_PROMETHEUS=0 EXTRAS=rocksdb,dashboards ./scripts/bootstrap.sh

run: install
	.venv/bin/corridor run

test:
	./scripts/bootstrap.sh
	.venv/bin/python -m pytest -q

unit:
	.venv/bin/python -m pytest -q tests/unit

integration:
	.venv/bin/python -m pytest -q tests/integration

# Rounds of replay + SIGKILL on both stores, checked exactly (not part of `make test`).
soak:
	WITH_PROMETHEUS=0 ./scripts/bootstrap.sh
	.venv/bin/python -m tests.soak $(SOAK_ARGS)

bench:
	.venv/bin/corridor bench

clean:
	rm -rf .venv .corridor-state *.egg-info
