"""The ``corridor`` command line: one module per verb."""

# Imported for their side effect: each verb module registers its command on ``cli``.
from streams.cli import (  # noqa: F401
    alerts,
    bench,
    broker,
    dashboards,
    ingest,
    publish,
    run,
    schema_export,
    shipments,
    show_settings,
    simulate,
    topics,
    validate,
    worker,
)
from streams.cli.base import cli, main

__all__ = ["cli", "main"]
