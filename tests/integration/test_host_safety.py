"""`make test` and `.ci/run` are harmless to the machine they run on.

Nothing in the setup stops, signals, starts or installs a service: Prometheus comes from
Debian's packages unpacked into .tools/ (scripts/bootstrap.sh), Alertmanager and kustomize are
built from their Go modules and Apache Kafka's jars are copied from Maven Central, all into .tools/
too, and a Prometheus already running on the machine keeps running through it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.integration.prometheus import PROJECT_ROOT, PrometheusServer, missing

pytestmark = pytest.mark.integration

BOOTSTRAP = PROJECT_ROOT / "scripts" / "bootstrap.sh"
TOOLS = ("prometheus", "promtool", "alertmanager", "amtool")
PACKAGES = ("prometheus",)

#: What the setup files may never contain: process killers and service or package managers.
FORBIDDEN = {
    "pkill": re.compile(r"\bpkill\b"),
    "killall": re.compile(r"\bkillall"),
    "systemctl": re.compile(r"\bsystemctl\b"),
    "service ... stop/start": re.compile(r"\bservice\s+\S+\s+(stop|start|restart|reload|force-reload)\b"),
    "rc.d / daemon control": re.compile(r"\b(invoke-rc\.d|update-rc\.d|start-stop-daemon|deb-systemd-invoke)\b"),
    "package install": re.compile(r"\b(apt-get|apt|aptitude)\b[^\n#]*\s(install|reinstall|remove|purge)\b"),
    "dpkg install": re.compile(r"\bdpkg\s+(-i|--install|-r|--remove|-P|--purge)\b"),
}

#: Commands the setup must not run; on the test's PATH they log their call and fail.
FORBIDDEN_COMMANDS = ("systemctl", "service", "invoke-rc.d", "update-rc.d", "deb-systemd-invoke",
                      "start-stop-daemon", "pkill", "killall", "apt", "aptitude")
#: Arguments that make apt-get or dpkg change the installed packages.
PACKAGE_CHANGES = ("install", "reinstall", "remove", "purge", "upgrade", "dist-upgrade", "full-upgrade",
                   "autoremove", "build-dep", "-i", "--install", "-r", "--remove", "-P", "--purge")


def setup_files() -> list[Path]:
    """The Makefile, every file under scripts/ and .ci/ (what `make test` and CI run)."""
    files = [PROJECT_ROOT / "Makefile", PROJECT_ROOT / ".ci" / "run"]
    for folder in ("scripts", ".ci"):
        files += [path for path in sorted((PROJECT_ROOT / folder).rglob("*")) if path.is_file()]
    return sorted(set(files))


def forbidden_lines(text: str) -> list[tuple[int, str, str]]:
    return [(number, name, line.strip()) for number, line in enumerate(text.splitlines(), 1)
            for name, pattern in FORBIDDEN.items() if pattern.search(line)]


def test_setup_files_never_kill_or_manage_services():
    found = [f"{path.relative_to(PROJECT_ROOT)}:{number}: {name}: {line}"
             for path in setup_files() for number, name, line in forbidden_lines(path.read_text(errors="replace"))]
    assert not found, "the test setup must not stop, kill, start or install services:\n" + "\n".join(found)


@pytest.mark.parametrize("line", [
    "pkill -f prometheus", "sudo killall prometheus", "systemctl stop prometheus",
    "/bin/systemctl mask prometheus.service", "service prometheus stop", "invoke-rc.d prometheus stop",
    "apt-get install -y -qq prometheus", "DEBIAN_FRONTEND=noninteractive apt install prometheus",
    "dpkg -i prometheus.deb",
])
def test_forbidden_patterns_catch_what_they_are_for(line):
    assert forbidden_lines(line)


def write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def guard_path(folder: Path, log: Path) -> str:
    """A PATH whose first folder turns forbidden commands into logged failures."""
    folder.mkdir()
    for command in FORBIDDEN_COMMANDS:
        write_executable(folder / command, f'#!/bin/sh\necho "{command} $*" >> "{log}"\nexit 97\n')
    changes = " ".join(PACKAGE_CHANGES)
    for command in ("apt-get", "dpkg"):
        real = shutil.which(command)
        passthrough = f'exec "{real}" "$@"' if real else "exit 127"
        write_executable(folder / command, f"""#!/bin/sh
for arg in "$@"; do
  for change in {changes}; do
    if [ "$arg" = "$change" ]; then echo "{command} $*" >> "{log}"; exit 97; fi
  done
done
{passthrough}
""")
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def project_copy(root: Path) -> Path:
    """A project holding the real bootstrap.sh, its .debs cache and a stand-in for the venv.

    The script runs byte for byte as `make test` runs it; only its Python part (pip installing
    into .venv) meets a stub interpreter, so the test neither reinstalls the shared venv nor
    needs PyPI. The Prometheus and docker-compose parts are real: they unpack the .debs
    scripts/bootstrap.sh keeps in .tools/debs (linked, not downloaded again) into this copy's
    .tools/. So are the Alertmanager build and the Kafka copy, from the Go module cache and the
    Maven repository of the project's .tools/ (linked: the same versions, nothing downloaded again).
    """
    cached = {package: sorted((PROJECT_ROOT / ".tools" / "debs").glob(f"{package}_*.deb")) for package in PACKAGES}
    if not all(cached.values()):
        missing("no Prometheus .debs in .tools/debs: run ./scripts/bootstrap.sh or make test first")
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(BOOTSTRAP, root / "scripts" / "bootstrap.sh")
    (root / ".venv" / "bin").mkdir(parents=True)
    write_executable(root / ".venv" / "bin" / "python", f'#!/bin/sh\necho "$*" >> "{root / "pip.log"}"\n')
    (root / ".tools" / "debs").mkdir(parents=True)
    for deb in sorted((PROJECT_ROOT / ".tools" / "debs").glob("*.deb")):
        (root / ".tools" / "debs" / deb.name).symlink_to(deb)
    (root / "scripts" / "kafka").mkdir()
    shutil.copy2(PROJECT_ROOT / "scripts" / "kafka" / "pom.xml", root / "scripts" / "kafka" / "pom.xml")
    for cache in ("go", "m2"):
        if not (PROJECT_ROOT / ".tools" / cache).is_dir():
            missing(f"no .tools/{cache} yet: run ./scripts/bootstrap.sh or make test first")
        (root / ".tools" / cache).symlink_to(PROJECT_ROOT / ".tools" / cache)
    return root


def test_running_prometheus_survives_bootstrap(prometheus_bin, tmp_path):
    host = PrometheusServer(tmp_path / "host", [], binary=prometheus_bin)
    host.workdir.mkdir()
    host.start()  # stands in for the machine's own Prometheus
    try:
        project = project_copy(tmp_path / "project")
        log = tmp_path / "forbidden.log"
        env = {key: value for key, value in os.environ.items()
               if key not in ("WITH_PROMETHEUS", "WITH_KAFKA", "PYTHON", "EXTRAS")}
        env["PATH"] = guard_path(tmp_path / "guard", log)

        def bootstrap() -> subprocess.CompletedProcess[str]:
            result = subprocess.run([str(project / "scripts" / "bootstrap.sh")], env=env, capture_output=True,
                                    text=True, timeout=300, check=False)
            assert result.returncode == 0, result.stdout + result.stderr
            return result

        def assert_host_untouched() -> None:
            assert host.alive(), "the running Prometheus was stopped"
            assert host.ready(), "the running Prometheus no longer answers /-/ready"
            assert not log.exists(), f"the setup ran forbidden commands:\n{log.read_text()}"

        first = bootstrap()  # unpacks the packages
        assert "Prometheus unpacked into .tools/bin" in first.stdout, first.stdout + first.stderr
        assert "docker-compose unpacked into .tools/bin" in first.stdout, first.stdout + first.stderr
        assert "Alertmanager built into .tools/bin" in first.stdout, first.stdout + first.stderr
        assert "kustomize built into .tools/bin" in first.stdout, first.stdout + first.stderr
        assert "Apache Kafka copied into .tools/kafka/libs" in first.stdout, first.stdout + first.stderr
        for tool in TOOLS:
            version = subprocess.run([str(project / ".tools" / "bin" / tool), "--version"], capture_output=True,
                                     text=True, timeout=60, check=False)
            assert version.returncode == 0, version.stdout + version.stderr
        compose = subprocess.run([str(project / ".tools" / "bin" / "docker-compose"), "version", "--short"],
                                 capture_output=True, text=True, timeout=60, check=False)
        assert compose.returncode == 0, compose.stdout + compose.stderr
        kustomize = subprocess.run([str(project / ".tools" / "bin" / "kustomize"), "version"], capture_output=True,
                                   text=True, timeout=60, check=False)
        assert kustomize.returncode == 0 and kustomize.stdout.startswith("v5."), kustomize.stdout + kustomize.stderr
        assert "-m pip install" in (project / "pip.log").read_text()
        assert_host_untouched()

        unpacked = (project / ".tools" / "root").stat()
        second = bootstrap()  # everything there: checks the binaries, changes nothing
        assert not re.search(r"unpacked|built|copied", second.stdout + second.stderr), second.stdout + second.stderr
        assert (project / ".tools" / "root").stat().st_ino == unpacked.st_ino
        assert_host_untouched()
    finally:
        host.stop()
    assert not host.alive()
