"""A TCP proxy on 127.0.0.1 that delays every chunk by a fixed time in each direction.

This kernel has no netem, so the tests add latency in user space: each chunk read from one side is
written to the other `delay_s` after it arrived, in order (a pipe with that one-way latency; chunks in
flight overlap, as on a real link). Everything is bounded: connections (`max_connections`), chunks
queued per direction (`max_queued`, which also pushes back on a fast sender), every wait (a poll of
0.2 s that checks for the stop), and `close`, which ends every connection and joins every thread.
"""

from __future__ import annotations

import contextlib
import queue
import select
import socket
import threading
import time

POLL_S = 0.2


class LatencyProxy:
    """Listens on 127.0.0.1 (a free port) and forwards each connection to `target` with `delay_s` each way."""

    def __init__(self, target: tuple[str, int], delay_s: float = 0.020, max_connections: int = 16,
                 max_queued: int = 256, chunk_size: int = 65536, connect_timeout: float = 5.0):
        self.target = target
        self.delay_s = delay_s
        self.max_connections = max_connections
        self.max_queued = max_queued
        self.chunk_size = chunk_size
        self.connect_timeout = connect_timeout
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.connections = 0
        self.bytes_forwarded = 0
        self._spawn(self._accept, "proxy-accept")

    def _spawn(self, target, name: str, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self.lock:
            self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            ready, _, _ = select.select([self.listener], [], [], POLL_S)
            if not ready:
                continue
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.connections >= self.max_connections:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=self.connect_timeout)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.connections += 1
                self.sockets += [client, server]
            number = self.connections
            for source, destination, direction in ((client, server, "up"), (server, client, "down")):
                chunks: queue.Queue = queue.Queue(self.max_queued)
                self._spawn(self._read, f"proxy-{number}-{direction}-read", source, chunks)
                self._spawn(self._write, f"proxy-{number}-{direction}-write", destination, chunks)

    def _read(self, source: socket.socket, chunks: queue.Queue) -> None:
        """Chunks of `source`, each stamped with when it is due on the other side; b'' at the end."""
        data = b""
        try:
            while not self.stopping.is_set():
                ready, _, _ = select.select([source], [], [], POLL_S)
                if not ready:
                    continue
                data = source.recv(self.chunk_size)
                self._put(chunks, (time.monotonic() + self.delay_s, data))
                if not data:
                    return
        except OSError:
            self._put(chunks, (time.monotonic(), b""))

    def _put(self, chunks: queue.Queue, item) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(queue.Full):
                chunks.put(item, timeout=POLL_S)
                return

    def _write(self, destination: socket.socket, chunks: queue.Queue) -> None:
        while not self.stopping.is_set():
            try:
                due, data = chunks.get(timeout=POLL_S)
            except queue.Empty:
                continue
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not data:
                    destination.shutdown(socket.SHUT_WR)
                    return
                destination.sendall(data)
            except OSError:
                return
            with self.lock:
                self.bytes_forwarded += len(data)

    def close(self) -> None:
        """End every connection and thread (each wait is at most POLL_S, so this takes about that)."""
        self.stopping.set()
        with self.lock:
            sockets, threads = list(self.sockets), list(self.threads)
        for sock in [self.listener, *sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in threads:
            thread.join(timeout=5)
        alive = [thread.name for thread in threads if thread.is_alive()]
        if alive:
            raise RuntimeError(f"proxy threads still running after close: {alive}")

    def __enter__(self) -> "LatencyProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
