"""TCP transport of the benchmark protocol (docs/protocol.md).

The server serves one client at a time. Its main thread reads and answers that client; an acceptor
thread owns the listening socket, so a second client is told "busy" at once whatever the session is
doing (sending slowly, idling, or waiting for a long inference). No client behaviour — garbage,
silence, a byte a second, a reset at any point — can stop the server: every failure of a client ends
that client's session only.

Only socket code is here: the bytes are `core.wire`'s, the host's session is
`core.runtimeprotocol.ClientSession` and the board's is `core.serving.InferenceServer`.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import logging
import math
import os
import queue
import select
import selectors
import socket
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.errors import AnswerDeadlineError, ConnectionLostError, ProtocolError
from edge_ai_lib.core.runtimeprotocol import RuntimeProtocol, ServerEvent, SpooledPayload
from edge_ai_lib.core.wire import (
    DEFAULT_MAX_PAYLOAD,
    HEADER_SIZE,
    TRAILER,
    FrameError,
    payload_checksum,
    MessageType,
    check_payload,
    decode_header,
    encode_header,
)

log = logging.getLogger(__name__)
# Each connection's receive buffer: a read takes whatever has arrived, up to this much. A larger
# payload grows only by what has been received (a header announcing 256 MiB costs nothing until the
# bytes come), or goes straight to a file (MODEL, when the server set a spool directory).
RECEIVE_LIMIT = 1 << 20
LISTEN_BACKLOG = 128
# Refused ("busy") connections are drained for a short while before closing, so that the kernel sends
# FIN and the refused client reads the reason instead of a reset; bounded in time, bytes and number.
REFUSAL_DRAIN_SECONDS = 0.5
REFUSAL_DRAIN_BYTES = 1 << 20
MAX_REFUSALS_DRAINING = 256
# Newcomers that may wait behind clients that have already closed their side (instead of "busy").
MAX_WAITING = 8
BUSY_MESSAGE = b"busy: the board is serving another client; retry later"


class _FrameDeadline(Exception):
    """A frame did not arrive whole within the timeout (raised instead of socket.timeout, which is an OSError)."""


def _wait(poller: select.poll, deadline: float) -> bool:
    """Wait until the poller's socket is ready or `deadline` passes; returns whether it is ready."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            return bool(poller.poll(max(1, math.ceil(remaining * 1000))))
        except InterruptedError:
            continue


class _SpoolWriter:
    """Checksums received pieces and writes them to a file on a thread of its own, so that the socket
    is read while the previous piece goes to the file (both release the GIL). A few buffers circulate
    between the two threads; a write error is kept and the remaining pieces are only checksummed, so
    that the stream stays in step and the sender hears why."""

    BUFFERS = 3

    def __init__(self, handle: BinaryIO, checksum):
        self.handle = handle
        self.checksum = checksum
        self.crc = 0
        self.failure: OSError | None = None
        self.free: queue.Queue[bytearray] = queue.Queue()
        self.work: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self.thread: threading.Thread | None = None

    def write_now(self, piece: memoryview) -> None:
        """Write a piece on the caller's thread (before the writer thread starts)."""
        self.crc = self.checksum(piece, self.crc)
        self._store(piece)

    def _store(self, piece: memoryview) -> None:
        if self.failure is None:
            try:
                self.handle.write(piece)
            except OSError as error:
                self.failure = error

    def free_buffer(self, deadline: float) -> bytearray:
        if self.thread is None:
            for _ in range(self.BUFFERS):
                self.free.put(bytearray(RECEIVE_LIMIT))
            self.thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)
            self.thread.start()
        try:
            return self.free.get(timeout=max(deadline - time.monotonic(), 1e-3))
        except queue.Empty:
            raise _FrameDeadline("the board could not store the payload as fast as it arrived") from None

    def queue(self, buffer: bytearray, count: int) -> None:
        self.work.put((buffer, count))

    def _run(self) -> None:
        while True:
            item = self.work.get()
            if item is None:
                return
            buffer, count = item
            with memoryview(buffer) as whole, whole[:count] as piece:
                self.crc = self.checksum(piece, self.crc)
                self._store(piece)
            self.free.put(buffer)

    def finish(self) -> tuple[int, OSError | None]:
        """Wait for the queued pieces; returns the checksum and the first write error."""
        if self.thread is not None:
            self.work.put(None)
            self.thread.join()
            self.thread = None
        return self.crc, self.failure


class _Stream:
    """One connected socket, non-blocking, with its receive buffer.

    A frame is read with as few system calls as its bytes allow: whatever has arrived is taken in one
    read (a small frame that has arrived whole costs one read, plus one poll when the reader had to
    wait), and what follows the frame stays buffered for the next one. Frames are sent with one
    `sendmsg` of header and payload when the socket takes them; large payloads go in pieces. Every
    wait is a poll bounded by the frame's deadline.
    """

    def __init__(self, sock: socket.socket, buffer_size: int = RECEIVE_LIMIT):
        self.sock = sock
        sock.setblocking(False)
        self.buffer = bytearray(buffer_size)
        self.view = memoryview(self.buffer)
        self.start = self.end = 0
        self.readable = select.poll()
        self.readable.register(sock, select.POLLIN)
        self.writable = select.poll()
        self.writable.register(sock, select.POLLOUT)

    # -- receiving ---------------------------------------------------------------------------------
    def buffered(self) -> int:
        return self.end - self.start

    def _read_some(self, deadline: float, limit: int | None = None) -> int:
        """Read what has arrived (at most `limit` bytes) into the buffer, waiting until `deadline` for
        something; socket.timeout when nothing came, ConnectionLostError when the peer closed."""
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buffer) or (limit is not None and self.end + limit > len(self.buffer)):
            kept = self.end - self.start
            self.buffer[:kept] = self.view[self.start:self.end]
            self.start, self.end = 0, kept
        room = len(self.buffer) - self.end if limit is None else min(limit, len(self.buffer) - self.end)
        count = self._recv_into(self.view[self.end:self.end + room], deadline)
        self.end += count
        return count

    def _recv_into(self, view: memoryview, deadline: float) -> int:
        """Read what has arrived into `view` (at least one byte), waiting until `deadline`."""
        while True:
            try:
                count = self.sock.recv_into(view, len(view))
            except (BlockingIOError, InterruptedError):
                if not _wait(self.readable, deadline):
                    raise socket.timeout("nothing arrived") from None
                continue
            if count == 0:
                raise ConnectionLostError("connection closed")
            return count

    def _fill(self, size: int, deadline: float, received_of: str) -> None:
        """Have at least `size` bytes buffered before `deadline` (size <= the buffer's size)."""
        while self.buffered() < size:
            try:
                self._read_some(deadline, None if self.start + size <= len(self.buffer) else size - self.buffered())
            except socket.timeout:
                raise _FrameDeadline(received_of.format(self.buffered())) from None
            except ConnectionLostError:
                raise ConnectionLostError(f"connection closed after {received_of.format(self.buffered())}") from None

    def _take(self, size: int) -> memoryview:
        piece = self.view[self.start:self.start + size]
        self.start += size
        return piece

    def receive_frame(self, wait: float, timeout: float, max_payload: int,
                      spool: Callable[[int, int], tuple[BinaryIO, Path] | None] | None = None
                      ) -> tuple[MessageType, bytearray | SpooledPayload]:
        """One whole frame, which must arrive within `timeout` from its first byte.

        The first byte is awaited for `wait` seconds; socket.timeout when none came. `spool(type,
        length)` may give a file (and its path) for a payload larger than the buffer: it is written
        there as it arrives, and handed over as a SpooledPayload once checked.
        """
        if not self.buffered():
            self._read_some(time.monotonic() + wait)
        deadline = time.monotonic() + timeout
        self._fill(HEADER_SIZE, deadline, "{} of " + f"{HEADER_SIZE} header bytes")
        header = decode_header(bytes(self._take(HEADER_SIZE)), max_payload)
        length = header.length
        trailer = TRAILER.size if header.crc_trailer else 0
        if length + trailer <= len(self.buffer):
            self._fill(length + trailer, deadline, "{} of " + f"{length + trailer} payload bytes")
            payload = bytearray(self._take(length))
            crc = payload_checksum(header.crc32c)(payload, 0) if length else 0
        else:
            target = spool(header.message_type, length) if spool is not None else None
            try:
                payload, crc = self._receive_large(length, deadline, target, payload_checksum(header.crc32c))
            except FrameError:  # the payload could not be stored: read the trailer, so that the stream is in step
                if trailer:
                    self._fill(trailer, deadline, "{} of " + f"{trailer} CRC trailer bytes")
                    self._take(trailer)
                raise
            if trailer:
                self._fill(trailer, deadline, "{} of " + f"{trailer} CRC trailer bytes")
        if trailer:
            (sent_crc,) = TRAILER.unpack(self._take(trailer))
            header = dataclasses.replace(header, payload_crc=sent_crc)
        try:
            return check_payload(header, payload if not isinstance(payload, SpooledPayload) else b"", crc), payload
        except FrameError:
            if isinstance(payload, SpooledPayload):
                payload.discard()
            raise

    def _receive_large(self, length: int, deadline: float, target: tuple[BinaryIO, Path] | None, checksum
                       ) -> tuple[bytearray | SpooledPayload, int]:
        """A payload larger than the buffer: into `target`'s file when given, else a bytearray that grows
        only by what has arrived. The checksum is computed as the bytes pass."""
        if target is None:
            return self._receive_into_memory(length, deadline, checksum)
        writer = _SpoolWriter(target[0], checksum)
        received = 0
        try:
            if self.buffered():  # what came with the header
                piece = self._take(min(self.buffered(), length))
                writer.write_now(piece)
                received += len(piece)
                piece.release()
            while received < length:
                buffer = writer.free_buffer(deadline)
                view = memoryview(buffer)
                want, filled = min(len(buffer), length - received), 0
                try:
                    while filled < want:
                        filled += self._recv_into(view[filled:want], deadline)
                except socket.timeout:
                    raise _FrameDeadline(f"{received + filled} of {length} payload bytes") from None
                except ConnectionLostError:
                    raise ConnectionLostError(f"connection closed after {received + filled} of {length} payload "
                                              "bytes") from None
                finally:
                    view.release()
                writer.queue(buffer, filled)
                received += filled
            crc, failure = writer.finish()
            try:
                target[0].close()
            except OSError as error:
                failure = failure or error
            if failure is not None:
                raise FrameError(f"the board cannot store a payload of {length} bytes in {target[1].parent} "
                                 f"({failure.strerror or failure}): free space there or pass another "
                                 "--save-model-path to the server", True)
            return SpooledPayload(target[1], length), crc
        except BaseException:
            writer.finish()
            target[0].close()
            target[1].unlink(missing_ok=True)
            raise

    def _receive_into_memory(self, length: int, deadline: float, checksum) -> tuple[bytearray, int]:
        crc, received = 0, 0
        memory = bytearray()
        while received < length:
            if not self.buffered():
                try:
                    self._read_some(deadline, length - received)
                except socket.timeout:
                    raise _FrameDeadline(f"{received} of {length} payload bytes") from None
                except ConnectionLostError:
                    raise ConnectionLostError(f"connection closed after {received} of {length} payload "
                                              "bytes") from None
            piece = self._take(min(self.buffered(), length - received))
            crc = checksum(piece, crc)
            received += len(piece)
            memory += piece
            piece.release()
        return memory, crc

    # -- sending -----------------------------------------------------------------------------------
    def send_all(self, pieces: list[bytes | bytearray | memoryview], deadline: float) -> None:
        """Send every piece before `deadline` (socket.timeout otherwise), with one sendmsg when the socket
        takes them all."""
        views = [memoryview(piece).cast("B") for piece in pieces if len(piece)]
        while views:
            try:
                sent = self.sock.sendmsg(views)
            except (BlockingIOError, InterruptedError):
                sent = 0
            while sent and views:
                if sent >= len(views[0]):
                    sent -= len(views[0])
                    views.pop(0)
                else:
                    views[0] = views[0][sent:]
                    sent = 0
            if views and not _wait(self.writable, deadline):
                raise socket.timeout("the peer is not reading")

    def send_frame(self, message_type: MessageType, payload: bytes | bytearray | memoryview, deadline: float,
                   packet_size: int, crc_trailer: bool = False, crc32c: bool = False) -> None:
        """Send one frame before `deadline` (raises socket.timeout or another OSError otherwise).

        With `crc_trailer` sending starts at once, whatever the payload's size: its CRC is computed on
        another thread while the bytes go (the checksum releases the GIL, as does sending), and sent
        after them (FLAG_CRC_TRAILER); CRC-32C with `crc32c` (FLAG_CRC32C).
        """
        header = encode_header(message_type, payload, crc_trailer, crc32c)
        if crc_trailer:
            checksum: list[int] = []
            function = payload_checksum(crc32c)
            worker = threading.Thread(target=lambda: checksum.append(function(payload, 0)), name="payload-crc")
            worker.start()
            try:
                self.send_all([header, payload], deadline)
            finally:
                worker.join()
            self.send_all([TRAILER.pack(checksum[0])], deadline)
            return
        if len(payload) <= packet_size:
            self.send_all([header, payload], deadline)
            return
        self.send_all([header], deadline)
        view = memoryview(payload).cast("B")
        for start in range(0, len(view), packet_size):
            self.send_all([view[start:start + packet_size]], deadline)


# Linux TCP states (first byte of struct tcp_info) in which the peer has sent FIN or the connection is gone.
_TCP_PEER_GONE_STATES = {7, 8, 9}  # CLOSE, CLOSE_WAIT, LAST_ACK


def _peer_has_left(sock: socket.socket) -> bool:
    """Whether the peer has closed or reset its side, even when some of what it sent is still unread."""
    if hasattr(socket, "TCP_INFO"):
        try:
            return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] in _TCP_PEER_GONE_STATES
        except OSError:
            return True
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _linger_close(sock: socket.socket, limit_bytes: int = 1 << 20, limit_seconds: float = 0.2) -> None:
    """Close after reading what the peer still sends (bounded), so the kernel sends FIN, not RST.

    Closing with unread input resets the connection, and the peer may then lose the ERROR just sent.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + limit_seconds
        drained = 0
        while drained < limit_bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                break
            drained += len(chunk)
    except OSError:
        pass
    finally:
        sock.close()


class _Acceptor:
    """The server's acceptor thread: hands one client at a time to the main thread, refuses the others.

    Refusals never block: the "busy" ERROR fits in a fresh socket's send buffer, and the refused socket
    is drained without blocking (bounded in time and bytes) so that the reason arrives before the close.
    """

    def __init__(self, listener: socket.socket, is_busy, hand_over):
        self.listener = listener
        self.is_busy = is_busy
        self.hand_over = hand_over
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, None)
        self.draining: dict[socket.socket, tuple[float, int]] = {}
        self.stop_event = threading.Event()
        self.wake_read, self.wake_write = socket.socketpair()
        self.selector.register(self.wake_read, selectors.EVENT_READ, "wake")
        self.thread = threading.Thread(target=self._run, name="acceptor", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._step()
            except Exception:  # the acceptor must outlive anything a client does
                log.exception("acceptor: unexpected error (the server goes on)")
                time.sleep(0.01)

    def _step(self) -> None:
        now = time.monotonic()
        timeout = min([deadline for deadline, _ in self.draining.values()], default=now + 0.5) - now
        for key, _ in self.selector.select(timeout=max(timeout, 0.0)):
            if key.data == "wake":
                self.wake_read.recv(64)
            elif key.fileobj is self.listener:
                self._accept()
            else:
                self._drain(key.fileobj)
        now = time.monotonic()
        for sock, (deadline, _) in list(self.draining.items()):
            if now >= deadline:
                self._forget(sock)

    def _accept(self) -> None:
        for _ in range(64):  # take what is waiting, a bounded number per turn
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # EMFILE and the like: say so, and let the client retry
                log.warning("cannot accept a connection (%s): file descriptors may be exhausted", error)
                time.sleep(0.05)
                return
            if self.is_busy():
                log.info("refusing %s: busy with another client", address)
                self._refuse(sock)
            else:
                self.hand_over(sock, address)

    def _refuse(self, sock: socket.socket) -> None:
        try:
            sock.setblocking(False)
            sock.send(encode_header(MessageType.ERROR, BUSY_MESSAGE) + BUSY_MESSAGE)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        if len(self.draining) >= MAX_REFUSALS_DRAINING:
            oldest = min(self.draining, key=lambda s: self.draining[s][0])
            self._forget(oldest)
        self.draining[sock] = (time.monotonic() + REFUSAL_DRAIN_SECONDS, 0)
        self.selector.register(sock, selectors.EVENT_READ, "drain")

    def _drain(self, sock: socket.socket) -> None:
        deadline, drained = self.draining[sock]
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        drained += len(chunk)
        if not chunk or drained >= REFUSAL_DRAIN_BYTES:
            self._forget(sock)
        else:
            self.draining[sock] = (deadline, drained)

    def _forget(self, sock: socket.socket) -> None:
        self.draining.pop(sock, None)
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    def stop(self) -> None:
        self.stop_event.set()
        try:
            self.wake_write.send(b"x")
        except OSError:
            pass
        self.thread.join(timeout=5)
        for sock in list(self.draining):
            self._forget(sock)
        self.selector.close()
        self.wake_read.close()
        self.wake_write.close()


class NetworkProtocol(RuntimeProtocol):
    """The protocol over TCP: one client at a time, a deadline on every frame.

    `host` and `port` say where the server listens or the client connects (port 0: the server picks
    a free one); the other arguments are in `arguments`.
    """

    arguments_title = "Runtime protocol arguments"
    arguments = (
        Argument("host", str, "127.0.0.1", "Address the server listens on / the client connects to"),
        Argument("port", int, 12345, "TCP port; 0 makes the server pick a free one and print it"),
        Argument("packet_size", int, 32768, "Size of the pieces payloads travel in"),
        Argument("timeout", float, 60.0,
                 "Seconds a whole frame may take to arrive; idle clients are dropped after it"),
        Argument("max_payload", int, DEFAULT_MAX_PAYLOAD, "Largest payload accepted, in bytes"),
    )

    def __init__(self, host: str | None = None, port: int | None = None, **settings: Any):
        given = {name: value for name, value in (("host", host), ("port", port)) if value is not None}
        self.configure({**given, **settings})
        if self.packet_size < 1:
            raise ProtocolError(f"--packet-size must be positive, got {self.packet_size}")
        if not self.timeout > 0 or not math.isfinite(self.timeout):
            raise ProtocolError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.max_payload < 1:
            raise ProtocolError(f"--max-payload must be positive, got {self.max_payload}")
        self.listener: socket.socket | None = None
        self.connection: socket.socket | None = None
        self.stream: _Stream | None = None
        self.client_deadline = 0.0
        # server side: the acceptor hands a client over through `pending`, under `lock`
        self.acceptor: _Acceptor | None = None
        self.lock = threading.Lock()
        self.pending: collections.deque[tuple[socket.socket, Any]] = collections.deque()
        self.handed_over = threading.Event()
        self.reply_failed = False

    # -- frames ------------------------------------------------------------------------------------
    def _spool(self, message_type: int, length: int) -> tuple[BinaryIO, Path] | None:
        """A private file for a large MODEL payload, when a spool directory is set."""
        if self.spool_directory is None or message_type != MessageType.MODEL:
            return None
        try:
            self.spool_directory.mkdir(parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(dir=self.spool_directory, prefix=".receiving-", delete=False)
        except OSError as error:
            log.warning("cannot spool a %d-byte payload in %s (%s): receiving it in memory", length,
                        self.spool_directory, error.strerror)
            return None
        return handle, Path(handle.name)

    def _receive_frame(self, wait: float | None = None) -> tuple[MessageType, bytearray | SpooledPayload]:
        """One whole frame from the connection (see _Stream.receive_frame)."""
        return self.stream.receive_frame(self.timeout if wait is None else max(wait, 1e-3), self.timeout,
                                         self.max_payload, self._spool)

    # -- server ------------------------------------------------------------------------------------
    def initialize_server(self) -> None:
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
        except socket.gaierror as error:
            raise ProtocolError(f"cannot listen on {self.host}: the address does not resolve ({error.strerror}); "
                                "pass an address of this machine with --host, e.g. 127.0.0.1") from error
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError as error:
            listener.close()
            if error.errno == errno.EADDRINUSE:
                raise ProtocolError(f"cannot listen on {self.host}:{self.port}: the port is in use; pass another "
                                    "--port (0 picks a free one) or stop the other server") from error
            raise ProtocolError(f"cannot listen on {self.host}:{self.port} ({error.strerror}): pass an address "
                                "of this machine with --host and a free --port (0 picks one)") from error
        listener.listen(LISTEN_BACKLOG)
        listener.setblocking(False)
        self.listener = listener
        self.port = listener.getsockname()[1]
        if self.host in ("0.0.0.0", "::", ""):
            log.warning("listening on every network interface (%s): anyone who can reach this machine can upload "
                        "and run models on it; listen on 127.0.0.1 and reach the board through an SSH tunnel, "
                        "or firewall the port", self.host or "all")
        self.acceptor = _Acceptor(listener, self._is_busy, self._hand_over)

    def _is_busy(self) -> bool:
        """Called by the acceptor: whether a newcomer must be refused.

        A newcomer waits its turn (it is not refused) when every client ahead of it has already closed
        its side: those sessions end as soon as their last requests are answered.
        """
        with self.lock:
            ahead = ([self.connection] if self.connection is not None else []) + [s for s, _ in self.pending]
        return len(ahead) > MAX_WAITING or any(not _peer_has_left(sock) for sock in ahead)

    def _hand_over(self, sock: socket.socket, address: Any) -> None:
        with self.lock:
            self.pending.append((sock, address))
        self.handed_over.set()

    def _take_pending(self) -> list[tuple[ServerEvent, Any, Any]]:
        with self.lock:
            if not self.pending:
                self.handed_over.clear()
                return []
            sock, address = self.pending.popleft()
            self.connection = sock
            self.stream = _Stream(sock)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.reply_failed = False
        self.client_deadline = time.monotonic() + self.timeout
        log.info("client %s connected", address)
        return [(ServerEvent.CONNECTED, address, None)]

    def drop_client(self, reason: str | None = None) -> list[tuple[ServerEvent, Any, Any]]:
        """Close the current client, telling it why first when a reason is given and it can still hear."""
        with self.lock:
            sock, self.connection = self.connection, None
            stream, self.stream = self.stream, None
        if sock is None:
            return []
        if reason:
            log.info("dropping client: %s", reason)
            if not self.reply_failed:
                try:
                    stream.send_frame(MessageType.ERROR, reason.encode(), time.monotonic() + 1.0, self.packet_size)
                except OSError:
                    pass
        _linger_close(sock)
        return [(ServerEvent.DISCONNECTED, reason, None)]

    def wait_for_activity(self, poll: float = 0.5) -> list[tuple[ServerEvent, Any, Any]]:
        """Wait at most `poll` seconds; returns events: connections, messages, disconnections."""
        if self.connection is None:
            if not self.pending:
                self.handed_over.wait(poll)
            return self._take_pending()
        if self.reply_failed:
            return self.drop_client(None)
        remaining = self.client_deadline - time.monotonic()
        if remaining <= 0:
            return self.drop_client(f"no request for {self.timeout:g} s: disconnecting")
        try:
            message_type, payload = self._receive_frame(wait=min(poll, remaining))
        except socket.timeout:
            return []  # no request yet: the idle deadline above ends the session in time
        except FrameError as error:
            if error.resynchronisable:
                self.reply(MessageType.ERROR, str(error).encode())
                self.client_deadline = time.monotonic() + self.timeout
                return []
            return self.drop_client(str(error))
        except _FrameDeadline as error:
            return self.drop_client(f"frame incomplete after {self.timeout:g} s ({error}): disconnecting")
        except MemoryError:
            return self.drop_client("the board ran out of memory receiving this frame: send smaller payloads "
                                    "or lower the server's --max-payload")
        except (ConnectionLostError, OSError):
            self.reply_failed = True  # closed or reset by the peer: nobody left to tell
            return self.drop_client(None)
        self.client_deadline = time.monotonic() + self.timeout
        return [(ServerEvent.MESSAGE, message_type, payload)]

    def reply(self, message_type: MessageType, payload: bytes | bytearray | memoryview = b"") -> bool:
        """Answer the current client; a client that cannot be answered is dropped, never raised about."""
        if self.stream is None or self.reply_failed:
            return False
        try:
            self.stream.send_frame(message_type, payload, time.monotonic() + self.timeout, self.packet_size)
            return True
        except OSError as error:
            log.info("client lost while answering (%s): ending its session", error)
            self.reply_failed = True
            return False

    def close_server(self) -> None:
        if self.acceptor is not None:
            self.acceptor.stop()
            self.acceptor = None
        self.drop_client(None)
        with self.lock:
            waiting, self.pending = list(self.pending), collections.deque()
        for sock, _ in waiting:
            sock.close()
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    # -- both sides --------------------------------------------------------------------------------
    def send_message(self, message_type: MessageType, payload: bytes = b"", crc_trailer: bool = False,
                     crc32c: bool = False) -> None:
        if self.stream is None:
            raise ConnectionLostError("not connected")
        try:
            self.stream.send_frame(message_type, payload, time.monotonic() + self.timeout, self.packet_size,
                                   crc_trailer, crc32c)
        except socket.timeout as error:
            raise ConnectionLostError(f"sending {message_type.name} did not finish within {self.timeout:g} s: the "
                                      "peer stopped reading; see the server's log") from error
        except OSError as error:
            raise ConnectionLostError(f"sending {message_type.name} failed ({error.strerror or error}): the peer "
                                      "closed the connection; see the server's log") from error

    def receive_message(self) -> tuple[MessageType, bytearray]:
        if self.stream is None:
            raise ConnectionLostError("not connected")
        try:
            return self._receive_frame()
        except (socket.timeout, _FrameDeadline) as error:
            raise AnswerDeadlineError(f"the board did not answer within {self.timeout:g} s: check that the server "
                                      "is running, or raise --timeout for slow models") from error
        except ConnectionLostError as error:
            raise ConnectionLostError(f"the board closed the connection ({error}): see the server's log") from error
        except OSError as error:
            raise ConnectionLostError(f"connection to the board failed ({error.strerror or error}): see the "
                                      "server's log") from error

    def disconnect(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
            self.stream = None

    # -- client ------------------------------------------------------------------------------------
    def initialize_client(self, attempts_until: float | None = None) -> None:
        """Connect to the server, retrying until `attempts_until` (a monotonic time) if given."""
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
                break
            except OSError as error:
                if attempts_until is None or time.monotonic() >= attempts_until:
                    raise ConnectionLostError(f"cannot connect to {self.host}:{self.port} ({error}): start "
                                              "inference_server on the board, check --host and --port") from error
                time.sleep(0.05)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection = sock
        self.stream = _Stream(sock)
