"""Serve inference on a board: wait for a client, load its model, run what it sends.

    python -m edge_ai_lib.scenarios.inference_server PROTOCOL RUNTIME --host 127.0.0.1 --port 12345 \\
        --packet-size 32768 --save-model-path build/board-model.tflite

Prints `listening on HOST:PORT` once it accepts clients (with --port 0, the port it picked).
Stops cleanly on SIGTERM or Ctrl-C, and, with --stop-with-fd, when the process that started it dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Sequence

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.runtime import Runtime
from edge_ai_lib.core.runtimeprotocol import RuntimeProtocol
from edge_ai_lib.core.serving import InferenceServer
from edge_ai_lib.scenarios.cli import ClassArgument, parse_scenario_arguments, run_scenario

log = logging.getLogger("edge_ai_lib.scenarios.inference_server")
# After the starter's death is noticed, the serving loop has this long to stop by itself (it is not
# interrupted in the middle of an inference); then the process exits regardless.
ORPHAN_GRACE_SECONDS = 10.0


def stop_with_fd(fd: int, stop: threading.Event) -> None:
    """Set `stop` once `fd` (the read end of a pipe whose write end the starter keeps) reaches end of file.

    The write end closes when the starter exits in any way, SIGKILL included, so a board started by a
    client never outlives it.
    """
    def watch() -> None:
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass
        log.warning("the process that started this server has exited: stopping")
        stop.set()
        threading.Timer(ORPHAN_GRACE_SECONDS, os._exit, args=(3,)).start()

    threading.Thread(target=watch, name="starter-watch", daemon=True).start()


# glibc's mallopt parameters (<malloc.h>).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
LARGE_BUFFER_BYTES = 256 * 1024


def return_large_buffers_to_the_system() -> None:
    """Make glibc map every buffer of 256 KiB or more on its own, so that freeing it gives it back.

    By default glibc raises its mmap threshold to the size of the largest block freed (up to 32 MiB),
    after which frame buffers of a few MiB come from the heap, whose top is rarely released: a server
    that received one large model keeps that much memory for the rest of its life, which a small
    board cannot spare. A fixed threshold ends that; it is left alone where the user set
    MALLOC_MMAP_THRESHOLD_ or the C library is not glibc.
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is not None:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES)
    mallopt(M_TRIM_THRESHOLD, 4 * LARGE_BUFFER_BYTES)


OPTIONS = (Argument("stop_with_fd", int, None,
                    "Stop when this inherited file descriptor (a pipe from the process that started the server) "
                    "reaches end of file, i.e. when that process dies"),
           Argument("lock_directory", str, None,
                    "Hold the board's lock (flock) in this directory while serving, so one benchmark at a time "
                    "runs on the board whichever host starts it; waits up to --lock-timeout before listening"),
           Argument("lock_name", str, "board", "The board's name: its lock file and messages"),
           Argument("lock_timeout", float, 600.0, "Seconds to wait for the board's lock"),
           Argument("lock_holder", dict, None,
                    "Who the lock is held for (JSON: pid, host, cwd, command of the client), shown to whoever "
                    "waits"))


def main(argv: Sequence[str] | None = None) -> None:
    run = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [ClassArgument("protocol", RuntimeProtocol, "RuntimeProtocol class (dotted path)"),
         ClassArgument("runtime", Runtime, "Runtime class (dotted path)")], options=OPTIONS, argv=argv)
    args = run.options
    stop = threading.Event()
    return_large_buffers_to_the_system()
    protocol = run.build("protocol")
    runtime = run.build("runtime")
    with contextlib.ExitStack() as held:
        if args.stop_with_fd is not None:
            stop_with_fd(args.stop_with_fd, stop)
        if args.lock_directory is not None:  # waited for before SIGTERM is taken over, so it interrupts the wait
            from edge_ai_lib.boards.lock import BoardLock

            held.enter_context(BoardLock(args.lock_name, args.lock_timeout, args.lock_directory,
                                         on_wait=lambda message: print(message, flush=True), holder=args.lock_holder))
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        protocol.initialize_server()
        print(f"listening on {protocol.host}:{protocol.port}", flush=True)
        InferenceServer(runtime, protocol).serve(stop)
    print("server stopped", flush=True)


if __name__ == "__main__":
    sys.exit(run_scenario(main, die_with_parent=False))
