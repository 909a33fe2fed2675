"""Running a corridor stream worker process."""

from __future__ import annotations

import sys

import faust

from streams.app import CorridorApp
from streams.settings import Settings


def build_worker(settings: Settings, corridor: CorridorApp | None = None) -> faust.Worker:
    """A faust worker for the corridor app; SIGTERM and SIGINT stop it cleanly."""
    corridor = corridor or CorridorApp(settings)
    worker = faust.Worker(
        corridor.app,
        loglevel=settings.log_level.lower(),
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    if not sys.stderr.isatty():
        worker.spinner = None  # its terminal escape codes would land in log files
    return worker
