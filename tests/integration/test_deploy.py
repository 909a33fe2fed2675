"""The deployment files in deploy/ hold together: no Docker engine or cluster needed.

- Docker Compose: Debian's docker-compose (unpacked into .tools/ by scripts/bootstrap.sh)
  accepts the file; every bind-mounted file exists; the services run real `corridor` verbs
  with real settings; the ingest listens where it is published, health-checked and scraped,
  with the development token docs/deploy.md sends; Prometheus' compose config passes
  `promtool check config`.
- Kubernetes: `kustomize build` renders the base and the dev overlay; every object
  validates against the Kubernetes API schemas (kubernetes-validate, strict: unknown fields
  fail); the PrometheusRule and the dashboards' ConfigMap equal the files they come from; the
  workers' and the ingest's Services, budgets and ServiceMonitors each select their own pods.
- The Dockerfile: slim base, the runtime lock installed with --require-hashes and the project
  without dependencies, a runtime stage holding only that venv, the OCI labels, non-root user,
  health check on /healthz, a real entry point.

docker-compose, promtool and kustomize missing (scripts/bootstrap.sh puts them into .tools/) skip
these tests, or fail them under CORRIDOR_REQUIRE_PROMETHEUS=1 (`make test`, CI).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

import dashboards
from dashboards.provisioning import render_configmap
from schemas.families import FAMILY_NAMES
from streams.alerting.kubernetes import rule_groups
from streams.alerting.thresholds import PROFILES
from streams.cli import cli
from streams.settings import Settings, ingest_token_digests
from tests.integration.prometheus import PROJECT_ROOT, TOOLS_BIN, job_of, missing, require_tool

pytestmark = pytest.mark.integration

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
K8S = DEPLOY / "k8s"
RULE_DIRECTORIES = (DEPLOY / "prometheus" / "rules", DEPLOY / "prometheus" / "alerts")

#: The Kubernetes version the manifests are validated for (kubernetes-validate ships its schemas).
KUBERNETES_VERSION = "1.30"
#: The Prometheus Operator's kinds, which kubernetes-validate has no schema for.
OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
METRICS_PORT = 6066
#: `corridor ingest`'s port (CORRIDOR_INGEST_PORT's default), published by compose and the Service.
INGEST_PORT = 6070
#: The Prometheus job of the ingest, in both Prometheus configurations and as the Service's name.
INGEST_JOB = "corridor-ingest"
#: The development token of deploy/compose/ingest.env, which docs/deploy.md's example sends.
COMPOSE_DEV_TOKEN = "corridor-dev-token"  # noqa: S105 - published on purpose, for the host only


def run(args: Sequence[str], cwd: Path = PROJECT_ROOT) -> str:
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{shlex.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return result.stdout


def corridor_command(args: Sequence[str]) -> click.Command:
    """The `corridor` command ``args`` run, with its options parsed as the entry point would."""
    command: click.Command = cli
    path = ["corridor"]
    rest = list(args)
    while isinstance(command, click.Group):
        assert rest, f"`{' '.join(path)}` needs a sub-command"
        name = rest.pop(0)
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"`{' '.join(path)}` has no command {name!r}"
        path.append(name)
        command = found
    try:
        command.make_context(" ".join(path), list(rest))  # click consumes the list it parses
    except click.UsageError as error:
        pytest.fail(f"`{shlex.join([*path, *rest])}`: {error.format_message()}")
    return command


def ingest_address(args: Sequence[str], settings: Settings) -> tuple[str, int]:
    """Where `corridor ingest` run with ``args`` listens: its options, else the settings (streams/cli/ingest.py)."""
    command = corridor_command(args)
    assert command.name == "ingest", f"{shlex.join(args)} is not `corridor ingest`"
    options = command.make_context("corridor ingest", list(args[1:])).params
    return options["host"] or settings.ingest_host, settings.ingest_port if options["port"] is None else options["port"]


def check_settings(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Every variable is a CORRIDOR_* setting (misspelt ones would be ignored) and its value valid."""
    fields = {f"CORRIDOR_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(set(environment) - fields)
    assert not unknown, f"not settings of streams/settings.py: {unknown}"
    for name in fields:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Settings()


# The Dockerfile


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) in order, continuation lines joined."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile_exec_form(keyword: str) -> list[str]:
    """The last ``keyword`` (ENTRYPOINT, CMD) of the final stage, which must be in exec (JSON) form."""
    values = [arguments for instruction, arguments in dockerfile() if instruction == keyword]
    assert values, f"the Dockerfile has no {keyword}"
    parsed = json.loads(values[-1])
    assert isinstance(parsed, list), f"{keyword} must be in exec form: {values[-1]}"
    return parsed


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    start = max(index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[start:]


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each from its FROM on."""
    found: list[list[tuple[str, str]]] = []
    for instruction in dockerfile():
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def pip_installs(stage: list[tuple[str, str]]) -> list[list[str]]:
    """The arguments of every `pip ... install` a stage's RUN instructions make."""
    runs = [arguments for keyword, arguments in stage if keyword == "RUN"]
    commands = [command.strip() for arguments in runs for command in arguments.split("&&")]
    return [shlex.split(command) for command in commands if re.search(r"\bpip\b.*\binstall\b", command)]


def test_dockerfile_builds_on_slim_python_and_copies_only_what_is_in_the_repository():
    bases = [arguments.split()[0] for keyword, arguments in dockerfile() if keyword == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases), bases
    for keyword, arguments in dockerfile():
        if keyword == "COPY" and not arguments.startswith("--from"):
            for source in arguments.split()[:-1]:
                assert (PROJECT_ROOT / source).exists(), f"COPY {source}: no such file in the repository"


def test_dockerfile_installs_the_runtime_lock_with_hashes_then_the_project_without_dependencies():
    build, runtime = stages()
    installs = pip_installs(build)
    locked = [args for args in installs if "requirements/runtime.lock" in args]
    assert len(locked) == 1, installs
    assert {"--require-hashes", "--no-deps", "--only-binary"} <= set(locked[0]), locked[0]
    assert locked[0][locked[0].index("requirements/runtime.lock") - 1] == "-r"
    (backend,) = [args for args in installs if "requirements/build.lock" in args]
    assert {"--require-hashes", "--no-deps"} <= set(backend), backend
    project = [args for args in installs if args not in (locked[0], backend)]
    assert project and all("--no-deps" in args for args in project), project
    # Nothing else is installed: no extras, no names, no other requirements file.
    for args in installs:
        assert not [arg for arg in args if "[" in arg or arg.startswith(("calfkit", "grafana"))], args
    built = [arguments for keyword, arguments in build if keyword == "RUN" and "--no-build-isolation" in arguments]
    assert built, "the project's wheel is built with the locked backend, not one fetched unhashed"
    assert not pip_installs(runtime), "the runtime stage installs nothing itself"


def test_dockerfile_runtime_stage_takes_only_the_locked_venv_from_the_build():
    build, runtime = stages()
    assert build[0][1].split()[-2:] == ["AS", "build"], build[0]
    copied = [arguments.split() for keyword, arguments in runtime if keyword == "COPY"]
    assert copied == [["--from=build", "/opt/corridor", "/opt/corridor"]], copied
    environment = " ".join(arguments for keyword, arguments in runtime if keyword == "ENV")
    assert "PATH=/opt/corridor/bin:" in environment
    # A venv of the lock and the project alone (no pip in it, so nothing else comes in later): no broker
    # binary, no dashboard SDK (tests/unit/test_release.py checks the lock).
    assert any("python -m venv --without-pip /opt/corridor" in arguments for keyword, arguments in build
               if keyword == "RUN"), "the runtime venv is made without pip"


OCI_LABELS = ("title", "description", "version", "source", "licenses", "revision", "created")


def test_dockerfile_labels_the_image_with_the_oci_annotations_from_its_arguments():
    _, runtime = stages()
    labels = dict(pair.split("=", 1) for keyword, arguments in runtime if keyword == "LABEL"
                  for pair in shlex.split(arguments))
    assert sorted(labels) == sorted(f"org.opencontainers.image.{name}" for name in OCI_LABELS), labels
    arguments = dict((pair.split("=", 1) + [""])[:2] for keyword, value in runtime if keyword == "ARG"
                     for pair in shlex.split(value))
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    label = {name: labels[f"org.opencontainers.image.{name}"] for name in OCI_LABELS}
    assert label["title"] == project["name"]
    assert label["description"] == project["description"]
    assert label["licenses"] == project["license"]
    for name, argument in (("version", "VERSION"), ("revision", "REVISION"), ("created", "CREATED"),
                           ("source", "SOURCE")):
        assert label[name] == f"${{{argument}}}" and argument in arguments, (name, label[name])
    assert arguments["VERSION"] == project["version"], "the default version is the release's"
    assert arguments["SOURCE"].startswith("https://")
    # `make image` passes what only the build knows.
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile[makefile.index("\nimage:"):].split("\n\n")[0]
    assert "-f deploy/docker/Dockerfile" in recipe
    assert set(re.findall(r"--build-arg (\w+)=", recipe)) == {"VERSION", "REVISION", "CREATED"}, recipe


def test_dockerfile_runs_as_a_non_root_user():
    users = [arguments for keyword, arguments in final_stage() if keyword == "USER"]
    assert users, "the final stage sets no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_dockerfile_checks_health_on_healthz_with_python_and_exposes_the_metrics_port():
    (healthcheck,) = [arguments for keyword, arguments in final_stage() if keyword == "HEALTHCHECK"]
    assert "/healthz" in healthcheck and str(METRICS_PORT) in healthcheck, healthcheck
    assert "urllib" in healthcheck and "curl" not in healthcheck, "python:3.11-slim has no curl"
    exposed = [arguments.split() for keyword, arguments in final_stage() if keyword == "EXPOSE"]
    assert [str(METRICS_PORT)] in exposed, exposed


def test_dockerfile_entrypoint_is_the_corridor_command_and_cmd_a_verb():
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert dockerfile_exec_form("ENTRYPOINT") == ["corridor"]
    assert scripts["corridor"] == "streams.cli:main"
    assert dockerfile_exec_form("CMD") == ["worker"]
    corridor_command(dockerfile_exec_form("CMD"))


# Docker Compose


@pytest.fixture(scope="module")
def docker_compose() -> str:
    local = TOOLS_BIN / "docker-compose"
    found = str(local) if local.exists() else shutil.which("docker-compose")
    if found is None:
        missing(f"docker-compose not found in {TOOLS_BIN} or on PATH: run ./scripts/bootstrap.sh or make test to "
                "unpack Debian's docker-compose into .tools/")
    return found


@pytest.fixture(scope="module")
def compose_config(docker_compose: str) -> dict[str, Any]:
    """The compose file as docker-compose resolves it (relative paths made absolute)."""
    return yaml.safe_load(run([docker_compose, "-f", str(COMPOSE_FILE), "config"]))


def compose_source() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def corridor_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from deploy/docker/Dockerfile."""
    return {name: service for name, service in config["services"].items()
            if service.get("build", {}).get("dockerfile") == "deploy/docker/Dockerfile"}


def test_docker_compose_accepts_the_compose_file(compose_config):
    assert set(compose_config["services"]) == {
        "kafka", "topics", "worker-1", "worker-2", "simulator", "ingest", "prometheus", "alertmanager", "grafana"}
    for service in corridor_services(compose_config).values():
        assert Path(service["build"]["context"]) == PROJECT_ROOT


def test_compose_file_uses_no_syntax_docker_compose_v2_rejects_or_deprecates():
    source = compose_source()
    # `version` is obsolete in Compose v2 (a warning); `links` and `external_links` are legacy.
    assert "version" not in source
    assert set(source) - {"services", "volumes", "networks", "configs", "secrets"} <= {
        key for key in source if key.startswith("x-")}
    for name, service in source["services"].items():
        assert not {"links", "external_links", "volume_driver", "cpu_shares"} & set(service), name
        depends_on = service.get("depends_on", {})
        if isinstance(depends_on, dict):
            conditions = {dependency["condition"] for dependency in depends_on.values()}
            assert conditions <= {"service_started", "service_healthy", "service_completed_successfully"}, name


def test_every_file_the_compose_file_mounts_exists(compose_config):
    named = set(compose_config.get("volumes") or {})
    binds = []
    for name, service in compose_config["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source in named:
                continue
            binds.append(source)
            assert Path(source).exists(), f"{name} mounts {source}, which is not in the repository"
    assert binds, "no bind mounts found: the checks above checked nothing"


def test_compose_workers_run_corridor_worker_with_valid_settings(compose_config, monkeypatch):
    services = corridor_services(compose_config)
    entrypoint = dockerfile_exec_form("ENTRYPOINT")
    workers = {name: service for name, service in services.items() if name.startswith("worker-")}
    assert set(workers) == {"worker-1", "worker-2"}
    for name, service in services.items():
        command = service.get("command", dockerfile_exec_form("CMD"))
        assert isinstance(command, list), f"{name}: give the command as a list"
        corridor_command(command)
        settings = check_settings(service["environment"], monkeypatch)
        assert settings.kafka_bootstrap == "kafka:9092", name
        assert service.get("entrypoint", entrypoint) == entrypoint, name
    for name, service in workers.items():
        assert service["command"] == ["worker"], name
        settings = check_settings(service["environment"], monkeypatch)
        assert settings.store == "rocksdb://", name
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
        assert mounts.get(str(settings.state_dir)) in compose_config["volumes"], (
            f"{name}: CORRIDOR_STATE_DIR {settings.state_dir} is not on a volume of its own")
    assert len({service["volumes"][0] for service in workers.values()}) == len(workers), "workers share a volume"


def test_compose_topics_are_created_by_corridor_topics_create(compose_config):
    source = compose_source()
    kafka = source["services"]["kafka"]["environment"]
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert source["services"]["topics"]["command"] == ["topics", "create"]
    for name in ("worker-1", "worker-2", "simulator", "ingest"):
        depends = compose_config["services"][name]["depends_on"]
        assert depends["topics"]["condition"] == "service_completed_successfully", name


def compose_seconds(duration: str) -> int:
    """A compose duration such as ``75s`` or ``1m30s``, in seconds."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, f"not a duration of hours, minutes and seconds: {duration!r}"
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def compose_ingest(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], Settings]:
    """The compose service running `corridor ingest`, and its settings."""
    ingest = config["services"]["ingest"]
    assert ingest in corridor_services(config).values(), "the ingest runs the project's image"
    return ingest, check_settings(ingest["environment"], monkeypatch)


def test_compose_ingest_runs_corridor_ingest_where_it_is_published_and_health_checked(compose_config, monkeypatch):
    ingest, settings = compose_ingest(compose_config, monkeypatch)
    assert ingest["command"][0] == "ingest"
    assert settings.ingest_tokens is not None, "without CORRIDOR_INGEST_TOKENS `corridor ingest` exits 2"
    assert ingest_token_digests(settings.ingest_tokens)
    host, port = ingest_address(ingest["command"], settings)
    assert host == "0.0.0.0", "on the container's loopback the published port would reach nothing"
    assert port == INGEST_PORT
    # Plain HTTP with bearer tokens: published on the host's loopback only (docs/ingest.md).
    assert [published.removesuffix("/tcp") for published in ingest["ports"]] == [f"127.0.0.1:{INGEST_PORT}:{port}"]
    assert ingest["depends_on"]["kafka"]["condition"] == "service_healthy"

    # The image's own health check asks the worker's port; the service replaces it.
    kind, *check = ingest["healthcheck"]["test"]
    assert kind == "CMD" and check[:2] == ["python", "-c"], ingest["healthcheck"]
    compile(check[2], "healthcheck", "exec")
    assert re.findall(r"http://[^'\"]+", check[2]) == [f"http://127.0.0.1:{port}/healthz"], check[2]
    assert "urllib" in check[2]
    # Requests in flight wait up to the publish timeout, then the publisher flushes as long again.
    assert compose_seconds(ingest["stop_grace_period"]) > 2 * settings.publish_retry_timeout_s


def test_compose_dev_token_is_the_one_the_deploy_docs_send(compose_config, monkeypatch):
    _, settings = compose_ingest(compose_config, monkeypatch)
    assert settings.ingest_tokens is not None
    digests = ingest_token_digests(settings.ingest_tokens)
    documented = hashlib.sha256(COMPOSE_DEV_TOKEN.encode()).hexdigest()
    assert digests.get(documented) == frozenset(FAMILY_NAMES), (
        f"deploy/compose/ingest.env must hold sha256:{documented} (the digest of {COMPOSE_DEV_TOKEN}) for every family")
    docs = (PROJECT_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    sent = set(re.findall(r"Authorization: Bearer ([A-Za-z0-9\-._~+/]+=*)", docs))
    assert sent == {COMPOSE_DEV_TOKEN}, f"docs/deploy.md sends {sorted(sent)}"
    assert COMPOSE_DEV_TOKEN in (DEPLOY / "compose" / "ingest.env").read_text(encoding="utf-8"), (
        "ingest.env names the token its digest stands for")


def compose_prometheus_config() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text(encoding="utf-8"))


def test_compose_prometheus_matches_the_project_config_and_scrapes_both_workers(compose_config):
    compose = compose_prometheus_config()
    project = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    assert compose["rule_files"] == project["rule_files"]
    assert compose["global"] == project["global"]
    jobs = {job["job_name"]: job for job in compose["scrape_configs"]}
    worker_job = job_of(PROFILES["default"].worker_selector)
    assert worker_job == "corridor-worker" and worker_job in jobs
    targets = [target for config in jobs[worker_job]["static_configs"] for target in config["targets"]]
    workers = sorted(name for name in compose_config["services"] if name.startswith("worker-"))
    assert sorted(targets) == [f"{name}:{METRICS_PORT}" for name in workers]
    alertmanagers = [target for manager in compose["alerting"]["alertmanagers"]
                     for config in manager["static_configs"] for target in config["targets"]]
    assert alertmanagers == ["alertmanager:9093"]

    prometheus = compose_config["services"]["prometheus"]
    retention = [flag for flag in prometheus["command"] if flag.startswith("--storage.tsdb.retention.time=")]
    assert retention == ["--storage.tsdb.retention.time=35d"], prometheus["command"]
    mounts = {volume.split(":")[1]: Path(volume.split(":")[0]) for volume in prometheus["volumes"]}
    config_dir = Path("/etc/prometheus")
    assert mounts[str(config_dir / "prometheus.yml")] == DEPLOY / "compose" / "prometheus.yml"
    for pattern in compose["rule_files"]:  # each rule glob, relative to the config file, is a mounted folder
        folder = str(config_dir / Path(pattern).parent)
        assert mounts[folder] == DEPLOY / "prometheus" / Path(pattern).parent


def test_compose_prometheus_scrapes_the_ingest_in_the_job_its_alerts_watch(compose_config, monkeypatch):
    compose = compose_prometheus_config()
    project = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    compose_jobs = {job["job_name"]: job for job in compose["scrape_configs"]}
    project_jobs = {job["job_name"]: job for job in project["scrape_configs"]}
    assert list(compose_jobs) == list(project_jobs)

    ingest, settings = compose_ingest(compose_config, monkeypatch)
    _, port = ingest_address(ingest["command"], settings)
    for jobs, expected in ((compose_jobs, f"ingest:{port}"), (project_jobs, f"127.0.0.1:{INGEST_PORT}")):
        targets = [target for config in jobs[INGEST_JOB]["static_configs"] for target in config["targets"]]
        assert targets == [expected]

    # The workers' and the ingest's targets both add `up` series: every rule reads `up` of one job, and
    # the corridor_ingest_* series only with the ingest's selector.
    worker_job = job_of(PROFILES["default"].worker_selector)
    ingest_selector = PROFILES["default"].ingest_selector
    assert job_of(ingest_selector) == INGEST_JOB != worker_job
    rules = [rule for group in rule_groups(RULE_DIRECTORIES) for rule in group["rules"]]
    for rule in rules:
        name = rule.get("alert", rule.get("record"))
        selectors = re.findall(r"\bup\b(\{[^}]*\})?", rule["expr"])
        assert all(selector in (f'{{job="{worker_job}"}}', f"{{{ingest_selector}}}") for selector in selectors), (
            f"{name} reads `up` of other jobs")
        ingest_selectors = re.findall(r"\bcorridor_ingest_\w+(\{[^}]*\})?", rule["expr"])
        assert all(selector.startswith(f"{{{ingest_selector}") for selector in ingest_selectors), name
    alerts = {rule.get("alert") for rule in rules}
    assert {"CorridorWorkerDown", "CorridorIngestDown"} <= alerts


def test_compose_prometheus_config_passes_promtool(tmp_path):
    promtool = require_tool("promtool")
    # The layout the container sees: the config with rules/ and alerts/ beside it.
    shutil.copy(DEPLOY / "compose" / "prometheus.yml", tmp_path / "prometheus.yml")
    for folder in RULE_DIRECTORIES:
        shutil.copytree(folder, tmp_path / folder.name)
    output = run([promtool, "check", "config", str(tmp_path / "prometheus.yml")])
    assert "SUCCESS" in output


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboards(compose_config):
    provisioning = DEPLOY / "grafana" / "provisioning"
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert datasource["uid"] == "corridor-prometheus" and datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090" and datasource["isDefault"] is True
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "corridor.yaml").read_text())["providers"]
    grafana = compose_config["services"]["grafana"]
    mounts = {volume.split(":")[1]: Path(volume.split(":")[0]) for volume in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == provisioning
    assert mounts[provider["options"]["path"]] == dashboards.JSON_DIR
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert mounts[str(home.parent)] == dashboards.JSON_DIR
    assert (dashboards.JSON_DIR / home.name).exists(), f"no dashboard {home.name} for Grafana's home page"


# Kubernetes


@pytest.fixture(scope="module")
def kustomize() -> str:
    """The kustomize scripts/bootstrap.sh builds into .tools/bin: the project's own, never another on PATH."""
    local = TOOLS_BIN / "kustomize"
    if not os.access(local, os.X_OK):
        missing(f"kustomize not found in {TOOLS_BIN}: run ./scripts/bootstrap.sh or make test to build it into .tools/")
    return str(local)


def kustomize_build(kustomize: str, folder: str) -> list[dict[str, Any]]:
    """The objects `kustomize build` renders from deploy/k8s/<folder>."""
    return [document for document in yaml.safe_load_all(run([kustomize, "build", str(K8S / folder)])) if document]


@pytest.fixture(scope="module", params=["base", "overlays/dev"])
def rendered(request: pytest.FixtureRequest, kustomize: str) -> list[dict[str, Any]]:
    return kustomize_build(kustomize, request.param)


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [item for item in objects if item["kind"] == kind]
    return found


def check_operator_object(item: dict[str, Any]) -> None:
    """The Prometheus Operator's kinds: kubernetes-validate has no schema for CRDs, so the fields
    the operator requires are checked here (monitoring.coreos.com/v1)."""
    assert item["apiVersion"] == "monitoring.coreos.com/v1", item["apiVersion"]
    assert item["metadata"]["name"]
    spec = item["spec"]
    if item["kind"] in ("ServiceMonitor", "PodMonitor"):
        assert spec["selector"]["matchLabels"], item["kind"]
        endpoints = spec["endpoints" if item["kind"] == "ServiceMonitor" else "podMetricsEndpoints"]
        assert endpoints and all(endpoint.get("port") for endpoint in endpoints), endpoints
    else:
        assert spec["groups"]
        for group in spec["groups"]:
            assert group["name"] and group["rules"], group
            for rule in group["rules"]:
                assert ("record" in rule) != ("alert" in rule) and rule["expr"], rule
                assert set(rule) <= {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


def test_kustomize_renders_objects_that_validate_against_the_kubernetes_schemas(rendered):
    kinds = set()
    for item in rendered:
        kinds.add(item["kind"])
        if item["kind"] in OPERATOR_KINDS:
            check_operator_object(item)
            continue
        try:
            kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{item['kind']}/{item['metadata']['name']}: {path}: {error.message}")
    assert {"StatefulSet", "Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "ServiceMonitor",
            "PrometheusRule"} <= kinds


def test_prometheus_rule_holds_exactly_the_groups_of_the_rule_files(rendered):
    rule = only(rendered, "PrometheusRule")
    files = [yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
             for folder in RULE_DIRECTORIES for path in sorted(folder.glob("*.yml"))]
    assert rule["spec"]["groups"] == [group for groups in files for group in groups]
    assert rule["spec"]["groups"] == rule_groups(RULE_DIRECTORIES)


def test_dashboards_configmap_holds_exactly_the_rendered_dashboards(rendered):
    (configmap,) = [item for item in rendered if item["kind"] == "ConfigMap"
                    and item["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    files = {path.name: path.read_text(encoding="utf-8") for path in dashboards.JSON_DIR.glob("*.json")}
    assert configmap["data"] == files, "run `corridor dashboards build` and commit deploy/k8s/base/"
    # The API server refuses a ConfigMap over 1 MiB.
    assert len(json.dumps(configmap["data"]).encode()) < 1024 * 1024


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return only(objects, "StatefulSet")["spec"]["template"]["spec"]


def container_environment(objects: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The variables a container gets from its envFrom ConfigMaps and Secrets, and env; the values
    of Secrets the objects do not hold (the base's) are left out."""
    environment: dict[str, str] = {}
    by_name = {(item["kind"], item["metadata"]["name"]): item for item in objects}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment.update(by_name[("ConfigMap", source["configMapRef"]["name"])]["data"])
        elif ("Secret", source["secretRef"]["name"]) in by_name:
            secret = by_name[("Secret", source["secretRef"]["name"])]
            environment.update({key: base64.b64decode(value).decode() for key, value in secret["data"].items()})
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
            continue
        reference = variable["valueFrom"]["secretKeyRef"]
        if ("Secret", reference["name"]) in by_name:
            value = by_name[("Secret", reference["name"])]["data"][reference["key"]]
            environment[variable["name"]] = base64.b64decode(value).decode()
    return environment


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def selecting(objects: list[dict[str, Any]], kind: str, labels: dict[str, str]) -> list[str]:
    """The names of the Services or PodDisruptionBudgets whose selector matches pods with ``labels``."""
    def selector(item: dict[str, Any]) -> dict[str, str]:
        return item["spec"]["selector"] if kind == "Service" else item["spec"]["selector"]["matchLabels"]
    return sorted(item["metadata"]["name"] for item in objects
                  if item["kind"] == kind and selector(item).items() <= labels.items())


def monitor_of(objects: list[dict[str, Any]], service_name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The one ServiceMonitor scraping the Service ``service_name``, and every Service it scrapes
    (the operator names each one's job after the Service)."""
    services = [item for item in objects if item["kind"] == "Service"]
    found = []
    for monitor in (item for item in objects if item["kind"] == "ServiceMonitor"):
        scraped = [service for service in services
                   if monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()]
        if any(service["metadata"]["name"] == service_name for service in scraped):
            found.append((monitor, scraped))
    assert len(found) == 1, f"{len(found)} ServiceMonitors scrape the Service {service_name}"
    return found[0]


def test_statefulset_runs_corridor_verbs_with_valid_settings(rendered, monkeypatch):
    spec = pod_spec(rendered)
    entrypoint = dockerfile_exec_form("ENTRYPOINT")
    containers = {container["name"]: container for container in spec["containers"] + spec["initContainers"]}
    assert containers["worker"]["args"] == ["worker"]
    assert containers["topics"]["args"] == ["topics", "create"]
    for name, container in containers.items():
        assert container.get("command", entrypoint) == entrypoint, name
        corridor_command(container.get("args", dockerfile_exec_form("CMD")))
        check_settings(container_environment(rendered, container), monkeypatch)
        assert any(source.get("secretRef", {}).get("name", "").startswith("corridor-kafka")
                   for source in container["envFrom"]), f"{name}: the Kafka settings come from the Secret"


def test_statefulset_keeps_rocksdb_state_on_its_volume_claim_and_probes_health(rendered, monkeypatch):
    statefulset = only(rendered, "StatefulSet")
    spec = pod_spec(rendered)
    (worker,) = [container for container in spec["containers"] if container["name"] == "worker"]
    settings = check_settings(container_environment(rendered, worker), monkeypatch)
    assert settings.store == "rocksdb://"
    claims = {claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in worker["volumeMounts"]}
    assert mounts.get(str(settings.state_dir)) in claims, "CORRIDOR_STATE_DIR is not on the volume claim"
    ports = {port["name"]: port["containerPort"] for port in worker["ports"]}
    assert settings.web_port == METRICS_PORT == ports["metrics"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http = worker[probe]["httpGet"]
        assert http["path"] == path and ports.get(http["port"], http["port"]) == METRICS_PORT, probe
    # Longer than Kubernetes' default 30 s: the shutdown checkpoint waits for the broker.
    assert spec["terminationGracePeriodSeconds"] >= 60
    assert spec["securityContext"]["runAsNonRoot"] is True and worker["resources"]["requests"]


def test_services_budget_and_monitor_select_the_worker_pods(rendered):
    statefulset = only(rendered, "StatefulSet")
    workers = pod_labels(statefulset)
    worker_job = job_of(PROFILES["default"].worker_selector)
    services = {item["metadata"]["name"]: item for item in rendered if item["kind"] == "Service"}
    headless = services[statefulset["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert selecting(rendered, "Service", workers) == sorted([headless["metadata"]["name"], worker_job])
    assert selecting(rendered, "PodDisruptionBudget", workers) == ["corridor-worker"]
    monitor, scraped = monitor_of(rendered, worker_job)
    # The operator names the job after the Service: the job CorridorWorkerDown watches.
    assert [service["metadata"]["name"] for service in scraped] == [worker_job]
    ports = {port["name"] for port in scraped[0]["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports


RECOMMENDED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                      "app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by")


def selector_of(item: dict[str, Any]) -> dict[str, str] | None:
    """The labels an object selects pods or Services by, if it selects any."""
    spec = item.get("spec", {})
    if item["kind"] == "Service":
        return spec.get("selector")
    if item["kind"] == "NetworkPolicy":
        return spec["podSelector"]["matchLabels"]
    if item["kind"] in ("StatefulSet", "Deployment", "PodDisruptionBudget", "ServiceMonitor"):
        return spec["selector"]["matchLabels"]
    return None


def test_every_object_carries_the_recommended_labels_and_selects_by_its_instance(rendered):
    release = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    for item in rendered:
        if item["kind"] in ("Namespace", "Secret"):
            continue  # the dev overlay's examples, made by hand in a real install
        labels = item["metadata"]["labels"]
        wanted = set(RECOMMENDED_LABELS) - ({"app.kubernetes.io/component"} if item["kind"] == "ConfigMap" else set())
        assert wanted <= labels.keys(), (item["kind"], item["metadata"]["name"], sorted(wanted - labels.keys()))
        assert labels["app.kubernetes.io/version"] == release, item["metadata"]["name"]
        selector = selector_of(item)
        if selector is not None:
            # Two installs in one namespace (each with its instance) never select each other's pods.
            assert selector["app.kubernetes.io/instance"] == labels["app.kubernetes.io/instance"], item["kind"]
        if item["kind"] in ("StatefulSet", "Deployment"):
            assert pod_labels(item)["app.kubernetes.io/instance"] == labels["app.kubernetes.io/instance"]


def test_network_policies_open_only_the_ports_the_pods_serve(rendered):
    policies = {item["metadata"]["name"]: item["spec"] for item in rendered if item["kind"] == "NetworkPolicy"}
    for workload, port in ((only(rendered, "StatefulSet"), METRICS_PORT), (only(rendered, "Deployment"), INGEST_PORT)):
        (policy,) = [spec for spec in policies.values() if spec["podSelector"]["matchLabels"].items()
                     <= pod_labels(workload).items()]
        assert policy["policyTypes"] == ["Ingress"]
        opened = [(opening["protocol"], opening["port"]) for rule in policy["ingress"] for opening in rule["ports"]]
        assert opened == [("TCP", port)], workload["metadata"]["name"]
        served = {p["containerPort"] for c in workload["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert served == {port}


def ingest_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_ingest_deployment_runs_corridor_ingest_with_valid_settings_and_tokens_from_the_secret(rendered, monkeypatch):
    container = ingest_container(rendered)
    entrypoint = dockerfile_exec_form("ENTRYPOINT")
    assert container.get("command", entrypoint) == entrypoint
    args = container.get("args", dockerfile_exec_form("CMD"))
    settings = check_settings(container_environment(rendered, container), monkeypatch)
    host, _ = ingest_address(args, settings)
    assert host == "0.0.0.0", "on the pod's loopback the Service would reach nothing"
    assert any(source.get("secretRef", {}).get("name", "").startswith("corridor-kafka")
               for source in container["envFrom"]), "the Kafka settings come from the Secret, as the workers'"
    assert any(source.get("configMapRef", {}).get("name", "").startswith("corridor-settings")
               for source in container["envFrom"])
    (tokens,) = [variable for variable in container["env"] if variable["name"] == "CORRIDOR_INGEST_TOKENS"]
    reference = tokens["valueFrom"]["secretKeyRef"]
    assert reference["name"].startswith("corridor-ingest-tokens") and reference["key"] == "tokens"
    # Without tokens the ingest refuses to start: a missing Secret should keep the pod from starting.
    assert not reference.get("optional", False)
    secrets = {item["metadata"]["name"] for item in rendered if item["kind"] == "Secret"}
    if secrets:  # an overlay: the reference is to its generated Secret, and the tokens parse
        assert reference["name"] in secrets
        assert settings.ingest_tokens is not None and ingest_token_digests(settings.ingest_tokens)


def test_ingest_deployment_is_stateless_non_root_and_probes_health_on_its_port(rendered, monkeypatch):
    deployment = only(rendered, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    container = ingest_container(rendered)
    settings = check_settings(container_environment(rendered, container), monkeypatch)
    _, port = ingest_address(container.get("args", dockerfile_exec_form("CMD")), settings)
    ports = {item["name"]: item["containerPort"] for item in container["ports"]}
    assert port == INGEST_PORT == ports["http"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http = container[probe]["httpGet"]
        assert http["path"] == path and ports.get(http["port"], http["port"]) == INGEST_PORT, probe
    assert not any("persistentVolumeClaim" in volume for volume in spec.get("volumes", [])), "the ingest keeps no state"
    # The image's user, as the workers run.
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == pod_spec(rendered)["securityContext"]["runAsUser"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    # Requests in flight wait up to the publish timeout, then the publisher flushes as long again.
    assert spec["terminationGracePeriodSeconds"] > 2 * settings.publish_retry_timeout_s


def test_ingest_service_budget_and_monitor_select_the_ingest_pods_not_the_workers(rendered):
    deployment = only(rendered, "Deployment")
    ingest, workers = pod_labels(deployment), pod_labels(only(rendered, "StatefulSet"))
    assert deployment["spec"]["selector"]["matchLabels"].items() <= ingest.items()
    # Neither controller may count the other's pods as its own.
    assert not deployment["spec"]["selector"]["matchLabels"].items() <= workers.items()
    assert not only(rendered, "StatefulSet")["spec"]["selector"]["matchLabels"].items() <= ingest.items()
    assert selecting(rendered, "Service", ingest) == [INGEST_JOB]
    assert selecting(rendered, "PodDisruptionBudget", ingest) == ["corridor-ingest"]
    (service,) = [item for item in rendered if item["kind"] == "Service" and item["metadata"]["name"] == INGEST_JOB]
    (service_port,) = service["spec"]["ports"]
    assert service_port["name"] == "http" and service_port["port"] == INGEST_PORT
    assert service_port["targetPort"] in ("http", INGEST_PORT)
    monitor, scraped = monitor_of(rendered, INGEST_JOB)
    # Its own job, apart from the workers' (CorridorWorkerDown watches that one only).
    assert [item["metadata"]["name"] for item in scraped] == [INGEST_JOB]
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} == {"http"}
    assert {endpoint.get("path", "/metrics") for endpoint in monitor["spec"]["endpoints"]} == {"/metrics"}


def test_dev_overlay_ships_example_secrets_and_one_pod_of_each(kustomize, monkeypatch):
    objects = kustomize_build(kustomize, "overlays/dev")
    secrets = {item["metadata"]["name"].rsplit("-", 1)[0]: item for item in objects if item["kind"] == "Secret"}
    assert set(secrets) == {"corridor-kafka", "corridor-ingest-tokens"}
    assert {item["metadata"].get("namespace") for item in objects if item["kind"] != "Namespace"} == {"corridor-dev"}
    assert only(objects, "StatefulSet")["spec"]["replicas"] == 1
    assert only(objects, "Deployment")["spec"]["replicas"] == 1
    values = {key: base64.b64decode(value).decode() for key, value in secrets["corridor-kafka"]["data"].items()}
    settings = check_settings(values, monkeypatch)
    assert settings.kafka_bootstrap and settings.kafka_security_protocol == "SASL_SSL"
    tokens = base64.b64decode(secrets["corridor-ingest-tokens"]["data"]["tokens"]).decode()
    settings = check_settings({"CORRIDOR_INGEST_TOKENS": tokens}, monkeypatch)
    assert settings.ingest_tokens is not None and ingest_token_digests(settings.ingest_tokens)
    base = kustomize_build(kustomize, "base")
    assert not [item for item in base if item["kind"] == "Secret"], "the base must not ship credentials"
    # The ingest scales apart from the workers: two by default.
    assert only(base, "Deployment")["spec"]["replicas"] == 2


# The ConfigMap renderer


def test_configmap_carries_each_model_as_its_committed_json():
    models = {"b-board": {"title": "Überblick", "panels": [{"expr": 'sum(rate(x{a="b"}[5m]))'}]},
              "a-board": {"uid": "a-board", "tags": []}}
    configmap = yaml.safe_load(render_configmap(models))
    assert configmap["apiVersion"] == "v1" and configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert list(configmap["data"]) == ["a-board.json", "b-board.json"]
    assert configmap["data"] == {f"{name}.json": dashboards.dumps(model) for name, model in models.items()}
    kubernetes_validate.validate(configmap, KUBERNETES_VERSION, strict=True)


def test_committed_configmap_matches_the_committed_dashboards():
    committed = (K8S / "base" / "grafana-dashboards.yaml").read_text(encoding="utf-8")
    assert committed == render_configmap(dashboards.load()), "run `corridor dashboards build`"
    assert len(committed.encode()) < 1024 * 1024
