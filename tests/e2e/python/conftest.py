"""Shared fixtures for the end-to-end tests: a real `clew serve` process.

The `clew` fixture starts the binary in a temporary directory with every
listener on port 0, reads the addresses it chose from its first stdout line
(`clew listening http=.. otlp_grpc=.. otlp_http=..`), and stops it with
SIGTERM when the test module is done, failing if it does not exit cleanly.

Environment:
  CLEW_BIN  the clew binary to test (default: <repo root>/target/debug/clew)
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 30.0
LISTENING_LINE = re.compile(r"^clew listening http=(\S+) otlp_grpc=(\S+) otlp_http=(\S+)$")


@dataclass
class ClewServer:
    """The listen addresses (host:port) of a running clew, and where its stderr goes."""

    http: str
    otlp_grpc: str
    otlp_http: str
    log_path: Path

    def url(self, path: str) -> str:
        """A URL on the HTTP API listener; `path` starts with a slash."""
        return f"http://{self.http}{path}"

    def log_tail(self, lines: int = 80) -> str:
        return tail(self.log_path, lines)


def tail(path: Path, lines: int = 80) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def clew_bin() -> str:
    return os.environ.get("CLEW_BIN") or str(REPO_ROOT / "target" / "debug" / "clew")


# The first admin's token of servers started with authentication required.
BOOTSTRAP_ADMIN_TOKEN = "clew_e2e_bootstrap_admin_token_0123456789"


@pytest.fixture(scope="module")
def clew(tmp_path_factory) -> Iterator[ClewServer]:
    yield from run_clew(tmp_path_factory.mktemp("clew"))


@pytest.fixture(scope="module")
def clew_auth(tmp_path_factory) -> Iterator[ClewServer]:
    """A clew requiring authentication; its admin's token is BOOTSTRAP_ADMIN_TOKEN."""
    env = {"CLEW_BOOTSTRAP_ADMIN_TOKEN": BOOTSTRAP_ADMIN_TOKEN}
    yield from run_clew(tmp_path_factory.mktemp("clew-auth"), ["--auth", "required"], env)


def run_clew(workdir: Path, extra_args: list[str] | None = None,
             env: dict[str, str] | None = None) -> Iterator[ClewServer]:
    log_path = workdir / "clew.stderr.log"
    binary = clew_bin()
    if not Path(binary).is_file():
        pytest.fail(f"clew binary not found at {binary!r}; build it or set CLEW_BIN")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                binary, "serve",
                "--data-dir", str(workdir / "data"),
                "--listen-http", "127.0.0.1:0",
                "--listen-otlp-grpc", "127.0.0.1:0",
                "--listen-otlp-http", "127.0.0.1:0",
                *(extra_args or []),
            ],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("CLEW_")}, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )

    # Read stdout on a thread so that waiting for the listening line can time out.
    lines: queue.Queue[str] = queue.Queue()

    def pump_stdout() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put("")  # EOF: clew exited or closed stdout

    threading.Thread(target=pump_stdout, daemon=True).start()

    # Lines before the listening line (the first admin's creation) are skipped.
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    match, seen = None, []
    while match is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line == "":
            break
        seen.append(line)
        match = LISTENING_LINE.match(line.strip())
    if not match:
        proc.kill()
        proc.wait()
        pytest.fail(f"no listening line from clew within {STARTUP_TIMEOUT_S}s (got {seen!r}, "
                    f"exit code {proc.returncode}); stderr:\n{tail(log_path)}")

    server = ClewServer(*match.groups(), log_path=log_path)
    yield server

    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"clew did not exit within {SHUTDOWN_TIMEOUT_S}s of SIGTERM; stderr:\n{server.log_tail()}")
    assert code == 0, f"clew exited with {code} after SIGTERM; stderr:\n{server.log_tail()}"
