"""The child processes the tools start and the ``/metrics`` they read, for ``corridor run``, ``corridor bench``,
the alert evaluation and the tests alike.

``children.py`` finds a free loopback port and starts and stops a child (SIGTERM, then SIGKILL
after a timeout; only ever a process this program started), ``corridor.py`` launches
``corridor worker`` and the other verbs (their environment, command line and log file), and
``metrics.py`` fetches a ``/metrics`` text and parses it into samples. Below the tools and
above the pure core: it imports nothing else of the application.
"""

from streams.process.children import ServerProcess, free_port, start_process, stop_process, tail
from streams.process.corridor import WORKER_ARGS, WorkerProcess, corridor_command, start_corridor
from streams.process.metrics import MetricsUnavailable, fetch_metrics, parse_metrics

__all__ = [
    "WORKER_ARGS",
    "MetricsUnavailable",
    "ServerProcess",
    "WorkerProcess",
    "corridor_command",
    "fetch_metrics",
    "free_port",
    "parse_metrics",
    "start_corridor",
    "start_process",
    "stop_process",
    "tail",
]
