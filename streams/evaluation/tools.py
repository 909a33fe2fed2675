"""Where the Prometheus binaries are: the configured path, then ``./.tools/bin``, then ``PATH``.

``CORRIDOR_PROMETHEUS_BIN`` / ``CORRIDOR_PROMTOOL_BIN`` / ``CORRIDOR_ALERTMANAGER_BIN`` /
``CORRIDOR_AMTOOL_BIN`` (read by :class:`~streams.settings.Settings`) name a binary; a path
that is set but not an executable file is a mistake to report, never a reason to run
another binary. ``.tools/bin`` is where ``scripts/bootstrap.sh`` unpacks Debian's packages.
:class:`streams.process.ServerProcess` runs one of the servers on loopback and stops only what it started.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from streams.settings import Settings

TOOLS = ("prometheus", "promtool", "alertmanager", "amtool")
#: The project's folder of unpacked tools, relative to where a command runs.
LOCAL_TOOLS = Path(".tools") / "bin"


class ToolMissing(RuntimeError):
    """A Prometheus binary that is not there; the message says how to get it."""


def env_name(tool: str) -> str:
    """The environment variable naming ``tool``'s binary."""
    return f"CORRIDOR_{tool.upper()}_BIN"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_tool(tool: str, settings: Settings | None = None, local: Sequence[Path] = (LOCAL_TOOLS,)) -> str | None:
    """The binary of ``tool`` as an absolute path: its configured path, then each of ``local``, then ``PATH``;
    or None."""
    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool!r}: one of {', '.join(TOOLS)}")
    settings = settings or Settings()
    configured = getattr(settings, f"{tool}_bin")
    if configured:
        return os.path.abspath(configured) if _executable(Path(configured)) else None
    for folder in local:
        if _executable(folder / tool):
            return os.path.abspath(folder / tool)
    found = shutil.which(tool)
    return os.path.abspath(found) if found else None


def require_tool(tool: str, settings: Settings | None = None, local: Sequence[Path] = (LOCAL_TOOLS,)) -> str:
    """The binary of ``tool``, or :class:`ToolMissing` saying how to provide it."""
    settings = settings or Settings()
    binary = find_tool(tool, settings, local)
    if binary is not None:
        return binary
    configured = getattr(settings, f"{tool}_bin")
    if configured:
        raise ToolMissing(f"{env_name(tool)}={configured} is not an executable file")
    places = ", ".join(str(folder) for folder in local)
    raise ToolMissing(
        f"{tool} not found in {places} or on PATH: run ./scripts/bootstrap.sh (unpacks Prometheus into "
        f".tools/bin), install Debian's prometheus package, or set {env_name(tool)}"
    )
