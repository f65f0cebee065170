"""The local board: the inference server as a subprocess of this host, on a free loopback port."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_ai_lib.core.board import Board
from edge_ai_lib.core.errors import BoardError

LISTENING = "listening on "


class LocalBoard(Board):
    """Runs `inference_server` next to the client, so a benchmark needs no hardware.

    The server's standard output and error go to a log file that is kept after the server stops. The
    server watches a pipe whose write end only this process holds, so it stops when this process dies,
    however it dies (see inference_server's --stop-with-fd).

    Parameters
    ----------
    log_path : Path | None
        Where the server's log is kept (a temporary file when None).
    startup_timeout : float
        Seconds to wait for the server to listen.
    """

    def __init__(self, name: str = "local", architecture: str = platform.machine(), log_path: Path | None = None,
                 startup_timeout: float = 120.0, python: str = sys.executable):
        super().__init__(name, architecture)
        if log_path is None:
            handle, name = tempfile.mkstemp(prefix="edge-ai-server-", suffix=".log")
            os.close(handle)
            log_path = Path(name)
        self.log_path = Path(log_path)
        self.startup_timeout = startup_timeout
        self.python = python
        self.process: subprocess.Popen | None = None
        self.lifeline: int | None = None

    def deploy(self, compiled_model_path: Path) -> str:
        return str(Path(compiled_model_path).resolve())

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start_server(self, protocol_class: str, runtime_class: str, arguments: list[str]) -> tuple[str, int]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        watched, self.lifeline = os.pipe()  # non-inheritable: only the server gets the read end, by pass_fds
        command = [self.python, "-m", "edge_ai_lib.scenarios.inference_server", protocol_class, runtime_class,
                   *arguments, "--host", "127.0.0.1", "--port", "0", "--stop-with-fd", str(watched)]
        try:
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, pass_fds=(watched,),
                                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        finally:
            os.close(watched)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith(LISTENING):
                    host, _, port = line[len(LISTENING):].strip().rpartition(":")
                    return host, int(port)
            if self.process.poll() is not None:
                raise BoardError(f"the inference server on board '{self.name}' exited with status "
                                 f"{self.process.returncode} before listening; its log ({self.log_path}) ends "
                                 f"with:\n{self.log_tail()}")
            time.sleep(0.02)
        self.stop_server()
        raise BoardError(f"the inference server on board '{self.name}' did not listen within "
                         f"{self.startup_timeout:g} s; see {self.log_path}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop_server(self, log_path: Path | None = None) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None
        if log_path is not None and Path(log_path) != self.log_path:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            Path(log_path).write_bytes(self.log_path.read_bytes())

    def __enter__(self) -> "LocalBoard":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_server()
