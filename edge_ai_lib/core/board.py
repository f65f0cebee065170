"""The Board interface: a machine that runs the inference server."""

from __future__ import annotations

import platform
from typing import Any

from edge_ai_lib.core.args import Argument, ArgumentsMixin


class Board(ArgumentsMixin):
    """Where a compiled model runs: start the inference server there, stop it, read its log.

    Boards are named by class path in the config (`class: edge_ai_lib.boards.local.LocalBoard`) like
    every other component. The server is started from its settings as data (`server_spec`: the
    protocol's and the runtime's class and arguments), never from shell words. A board is used by one
    benchmark at a time: `exclusive()` holds it across every process of the host.

    Implementations: `boards.local` (a subprocess on loopback); remote boards (SSH) add `deploy`.
    """

    arguments_title = "Board arguments"
    arguments = (
        Argument("board_name", str, "local", "The board's name (its key in the config): used in messages, results "
                 "and its lock", attribute="name"),
        Argument("architecture", str, platform.machine(), "CPU architecture of the board (x86_64, aarch64...)"),
        Argument("lock_timeout", float, 600.0, "Seconds to wait while another benchmark holds the board before "
                 "failing with the holder's description"),
        Argument("emulated", bool, False, "The board is emulated (e.g. qemu-user, edge_ai_lib.boards.emulated): its "
                 "results are marked so that its timings are never read as the real CPU's speed"),
    )

    def __init__(self, **settings: Any):
        self.configure(settings)

    def deploy(self, server_spec: dict[str, Any] | None = None) -> None:
        """Make sure the board can run the server with `server_spec` (library, the runtime's packages);
        nothing to do for the local board."""

    def start(self, server_spec: dict[str, Any]) -> tuple[str, int]:
        """Start `inference_server` with `server_spec`; returns the (host, port) the client connects to."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server (if running) and release what it used; safe to call twice."""
        raise NotImplementedError

    def alive(self) -> bool:
        """Whether the server is still running."""
        raise NotImplementedError

    def exit_status(self) -> int | None:
        """The server's exit status once it has ended (waiting a moment for a dying server), else None."""
        raise NotImplementedError

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        raise NotImplementedError

    def explain_failure(self, message: str) -> str:
        """What the board itself can add to a failed session's error `message` (e.g. its free disk space),
        as text to append to it; '' when nothing."""
        return ""

    def exclusive(self):
        """A context manager holding the board for one benchmark (see boards.lock)."""
        from edge_ai_lib.boards.lock import BoardLock

        return BoardLock(self.lock_name(), timeout=self.lock_timeout)

    def lock_name(self) -> str:
        return self.name

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "class": f"{type(self).__module__}.{type(self).__name__}",
                "architecture": self.architecture, "emulated": self.emulated}

    def __enter__(self) -> "Board":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
