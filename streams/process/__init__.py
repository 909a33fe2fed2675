"""The child processes the tools start, for ``corridor run``, ``corridor bench``, the alert evaluation and the
tests alike.

``children.py`` finds a free loopback port and starts and stops a child (SIGTERM, then SIGKILL
after a timeout; only ever a process this program started). Below the tools and above the
pure core: it imports nothing else of the application.
"""

from streams.process.children import ServerProcess, free_port, start_process, stop_process, tail

__all__ = [
    "ServerProcess",
    "free_port",
    "start_process",
    "stop_process",
    "tail",
]
