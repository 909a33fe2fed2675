"""``corridor worker``: one stream worker process."""

from __future__ import annotations

from streams.cli.base import cli, setup


@cli.command()
def worker() -> None:
    """Run one stream worker: consume the four family topics, serve /metrics on CORRIDOR_WEB_PORT.

    Several workers with the same CORRIDOR_APP_ID form one consumer group and split the
    partitions. SIGTERM or Ctrl-C checkpoints the state and stops cleanly.
    """
    from streams.worker.app import build_worker

    settings = setup()
    build_worker(settings).execute_from_commandline()
