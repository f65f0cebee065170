"""The local board: the inference server as a subprocess of this host, on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.board import Board
from edge_ai_lib.core.errors import BoardError

LISTENING = "listening on "


class LocalBoard(Board):
    """Runs `inference_server` next to the client, so a benchmark needs no hardware.

    The server gets its settings as one JSON spec, listens on 127.0.0.1 on a port it picks, and logs
    to a file kept after it stops. It watches a pipe whose write end only this process holds, so it
    stops when this process dies, however it dies (see inference_server's --stop-with-fd). Every local
    board is this host: they share one lock whatever their names.
    """

    arguments = (
        Argument("log_path", Path, None, "Where the server's log is kept (default: a temporary file)"),
        Argument("startup_timeout", float, 120.0, "Seconds to wait for the server to listen"),
        Argument("python", str, sys.executable, "The Python that runs the server"),
    )

    def __init__(self, **settings: Any):
        super().__init__(**settings)
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="edge-ai-server-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self.process: subprocess.Popen | None = None
        self.lifeline: int | None = None

    def lock_name(self) -> str:
        return "local"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self, server_spec: dict[str, Any]) -> tuple[str, int]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        protocol = server_spec["protocol"]
        spec = {**server_spec, "protocol": {**protocol, "args": {**protocol.get("args", {}),
                                                                 "host": "127.0.0.1", "port": 0}}}
        watched, self.lifeline = os.pipe()  # non-inheritable: only the server gets the read end, by pass_fds
        spec["options"] = {**spec.get("options", {}), "stop_with_fd": watched}
        command = [self.python, "-m", "edge_ai_lib.scenarios.inference_server", "--spec", json.dumps(spec)]
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
        self.stop()
        raise BoardError(f"the inference server on board '{self.name}' did not listen within "
                         f"{self.startup_timeout:g} s; see {self.log_path}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_status(self) -> int | None:
        if self.process is None:
            return None
        try:  # a server that is dying may close its connections a moment before it exits
            return self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None
