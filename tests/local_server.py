"""Starting a server command as a subprocess on a loopback port, for the tests of `serve` and `ui`:
a free port, waiting until it answers (failing with its log if it exits or never does), stopping it."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(process: subprocess.Popen, ready: Callable[[], bool], log: Path, what: str, timeout_s: float,
                     interval_s: float = 0.2) -> None:
    """Poll `ready()` (its OSError counts as not ready) until it holds; fail the test if the process
    exits first or `timeout_s` passes (the process is then killed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            pytest.fail(f"{what} exited ({process.returncode}):\n{log.read_text()}")
        try:
            if ready():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what} did not answer in {timeout_s} s:\n{log.read_text()}")
        time.sleep(interval_s)


def stop(process: subprocess.Popen, timeout_s: float = 20) -> None:
    """Terminate, and kill if it has not ended within `timeout_s`."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
