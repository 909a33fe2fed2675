"""Children started with a log file, stopped with a signal and SIGKILL after a timeout; a free port; a log's end."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from streams.process import ServerProcess, free_port, start_process, stop_process, tail

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
#: A child that ignores SIGTERM once it has said so in its log.
STUBBORN = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ignoring SIGTERM', flush=True); time.sleep(60)"]


def wait_for_line(log: Path, line: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while line not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"no {line!r} in {log}"
        time.sleep(0.02)


def test_free_port_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()


def test_a_child_stopped_by_sigterm_is_reaped_with_its_code(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "child.log"
    process = start_process(SLEEPER, log_path=log)
    wait_for_line(log, "up")
    assert stop_process(process, timeout_s=10) == -signal.SIGTERM
    assert process.returncode == -signal.SIGTERM


def test_a_child_ignoring_the_signal_is_killed_after_the_timeout(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    process = start_process(STUBBORN, log_path=log)
    wait_for_line(log, "ignoring SIGTERM")
    started = time.monotonic()
    assert stop_process(process, timeout_s=0.3) == -signal.SIGKILL
    assert time.monotonic() - started < 10


def test_a_child_that_already_exited_gets_no_signal_and_keeps_its_code(tmp_path: Path) -> None:
    process = start_process([sys.executable, "-c", "raise SystemExit(3)"], log_path=tmp_path / "child.log")
    process.wait(20)
    assert stop_process(process, timeout_s=1) == 3


def test_the_log_is_appended_to_or_written_afresh_and_the_session_is_chosen(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    say = [sys.executable, "-c", "import os; print(os.getsid(0))"]
    start_process(say, log_path=log).wait(20)
    start_process(say, log_path=log, new_session=False).wait(20)
    own, inherited = log.read_text().split()
    assert int(inherited) == os.getsid(0) != int(own)
    start_process(say, log_path=log, append=False).wait(20)
    assert len(log.read_text().split()) == 1


def test_tail_is_the_logs_last_lines_and_empty_when_there_is_no_log(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    log.write_text("".join(f"line {n}\n" for n in range(50)))
    assert tail(log, 3) == "line 47\nline 48\nline 49"
    assert tail(tmp_path / "missing.log") == ""


def test_a_server_process_is_ready_when_its_url_answers_and_stops_when_asked(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
                            "--directory", str(tmp_path)],
                           tmp_path / "server.log", f"http://127.0.0.1:{port}/", ready_timeout_s=30, stop_timeout_s=10)
    server.start()
    process = server.process
    assert process is not None and server.ready()
    server.stop()
    assert server.process is None and process.returncode is not None and not server.ready()


def test_a_server_that_exits_is_reported_with_the_end_of_its_log(tmp_path: Path) -> None:
    server = ServerProcess([sys.executable, "-c", "print('bad flag'); raise SystemExit(2)"], tmp_path / "server.log",
                           f"http://127.0.0.1:{free_port()}/", ready_timeout_s=30)
    with pytest.raises(RuntimeError, match="exited with 2: bad flag"):
        server.start()
    assert server.process is None
