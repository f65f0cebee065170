"""One benchmark per board at a time, across every process of this host.

A board is held with `flock` on a file named after it, so the kernel releases it when its holder
dies in any way (SIGKILL included): no stale lock survives a crash. The holder writes who it is into
the file, so whoever waits can say which process has the board.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from edge_ai_lib.core.errors import BoardError

ENVIRONMENT_DIRECTORY = "EDGE_AI_LOCK_DIR"


def default_lock_directory() -> Path:
    """Where board locks live: $EDGE_AI_LOCK_DIR, else a directory under the system's temporary one.

    It must be the same for every workflow of this host that may use the same boards.
    """
    configured = os.environ.get(ENVIRONMENT_DIRECTORY)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "edge-ai-tester-locks"


def holder_description() -> dict[str, Any]:
    """This process, as a lock holder: its pid, host, working directory and command."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "cwd": os.getcwd(), "command": " ".join(sys.argv)[:500]}


def _describe_holder(text: str) -> str:
    try:
        holder = json.loads(text)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since_unix"]))
        return (f"pid {holder['pid']} on {holder['host']} since {since} (working directory {holder['cwd']}, "
                f"command: {holder['command']})")
    except (ValueError, KeyError, TypeError):
        return "an unknown process (the lock file holds no description)"


class BoardLock:
    """Exclusive use of a board for the lifetime of this object's `with` block.

    Parameters
    ----------
    board : str
        The board's name; boards with the same name share one lock.
    timeout : float
        Seconds to wait for another holder to finish before failing with its description.
    directory : Path | None
        Where the lock files live (see `default_lock_directory`).
    on_wait : callable | None
        Called once with a sentence when the board is busy and this lock starts waiting.
    holder : dict | None
        Who holds the board, written into the lock for whoever waits (default: this process). A board
        holding its lock on behalf of a remote host (the SSH board's server) names that host's process.
    """

    def __init__(self, board: str, timeout: float = 600.0, directory: Path | None = None,
                 on_wait: Callable[[str], Any] | None = None, holder: dict[str, Any] | None = None):
        self.board = board
        self.timeout = float(timeout)
        self.directory = Path(directory) if directory is not None else default_lock_directory()
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", board) or "_"
        self.path = self.directory / f"{safe}.lock"
        self.on_wait = on_wait or (lambda message: print(message, file=sys.stderr, flush=True))
        self.holder = holder
        self.handle: int | None = None

    def _open(self) -> int:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.directory == default_lock_directory() and not os.environ.get(ENVIRONMENT_DIRECTORY):
                try:  # shared by every user of the host, like /tmp itself
                    os.chmod(self.directory, 0o1777)
                except PermissionError:
                    pass
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as error:
            raise BoardError(f"cannot open the lock of board '{self.board}' at {self.path} ({error.strerror}): "
                             f"set {ENVIRONMENT_DIRECTORY} to a writable directory shared by the workflows of "
                             "this host") from error
        return handle

    def acquire(self) -> "BoardLock":
        handle = self._open()
        deadline = time.monotonic() + self.timeout
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _describe_holder(self._read(handle))
                if time.monotonic() >= deadline:
                    os.close(handle)
                    raise BoardError(f"board '{self.board}' is still in use by {holder} after waiting "
                                     f"{self.timeout:g} s: wait for that benchmark to finish, or raise the "
                                     "board lock timeout (benchmark.board_lock_timeout in the config, "
                                     "--lock-timeout by hand)") from None
                if not told:
                    self.on_wait(f"board '{self.board}' is in use by {holder}: waiting up to {self.timeout:g} s")
                    told = True
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))
        description = json.dumps({**holder_description(), **(self.holder or {}), "since_unix": time.time()})
        os.ftruncate(handle, 0)
        os.pwrite(handle, description.encode(), 0)
        self.handle = handle
        return self

    @staticmethod
    def _read(handle: int) -> str:
        try:
            return os.pread(handle, 4096, 0).decode(errors="replace")
        except OSError:
            return ""

    def release(self) -> None:
        if self.handle is not None:
            try:
                os.ftruncate(self.handle, 0)
            except OSError:
                pass
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            os.close(self.handle)
            self.handle = None

    def __enter__(self) -> "BoardLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
