"""The ``corridor`` command line: one module per verb."""

# Imported for their side effect: each verb module registers its command on ``cli``.
from streams.cli import broker, publish, run, schema_export, simulate, topics, validate, worker  # noqa: F401
from streams.cli.base import cli, main

__all__ = ["cli", "main"]
