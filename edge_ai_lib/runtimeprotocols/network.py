"""TCP transport of the benchmark protocol (docs/protocol.md)."""

from __future__ import annotations

import argparse
import json
import logging
import select
import selectors
import socket
import time
import zlib
from typing import Any

from edge_ai_lib.core.errors import ConnectionLostError, ProtocolError, RemoteError
from edge_ai_lib.core.runtimeprotocol import (
    DEFAULT_MAX_PAYLOAD,
    HEADER_SIZE,
    FrameError,
    MessageType,
    RuntimeProtocol,
    ServerEvent,
    check_payload,
    decode_header,
    encode_header,
)

log = logging.getLogger(__name__)
# A receiver takes whatever has arrived, up to this much per call; --packet-size sets the sender's pieces.
RECEIVE_LIMIT = 1 << 20


def _linger_close(sock: socket.socket, limit_bytes: int = 1 << 20, limit_seconds: float = 0.2) -> None:
    """Close after reading what the peer still sends (bounded), so the kernel sends FIN, not RST.

    Closing with unread input resets the connection, and the peer may then lose the ERROR just sent.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(limit_seconds)
        deadline = time.monotonic() + limit_seconds
        drained = 0
        while drained < limit_bytes and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            drained += len(chunk)
    except OSError:
        pass
    finally:
        sock.close()


class NetworkProtocol(RuntimeProtocol):
    """The protocol over one TCP connection: one client at a time, timeouts on every read.

    Parameters
    ----------
    host, port : str, int
        Where the server listens / the client connects; port 0 lets the server pick a free one.
    packet_size : int
        Size of the pieces payloads are sent and received in.
    timeout : float
        Seconds any read may wait (also how long an idle client is kept).
    max_payload : int
        Largest payload accepted; larger frames are refused before anything is allocated.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 12345, packet_size: int = 32768,
                 timeout: float = 60.0, max_payload: int = DEFAULT_MAX_PAYLOAD):
        if packet_size < 1:
            raise ProtocolError(f"--packet-size must be positive, got {packet_size}")
        if timeout <= 0:
            raise ProtocolError(f"--timeout must be positive, got {timeout}")
        self.host = host
        self.port = int(port)
        self.packet_size = int(packet_size)
        self.timeout = float(timeout)
        self.max_payload = int(max_payload)
        self.listener: socket.socket | None = None
        self.connection: socket.socket | None = None
        self.selector: selectors.BaseSelector | None = None
        self.client_deadline = 0.0

    # -- frames ------------------------------------------------------------------------------------
    def _send_frame(self, sock: socket.socket, message_type: MessageType, payload: bytes = b"") -> None:
        header = encode_header(message_type, payload)
        if len(payload) <= self.packet_size:
            sock.sendall(header + payload)
            return
        sock.sendall(header)
        view = memoryview(payload)
        for start in range(0, len(view), self.packet_size):
            sock.sendall(view[start:start + self.packet_size])

    def _receive_exact(self, sock: socket.socket, size: int) -> tuple[bytearray, int]:
        """Read exactly `size` bytes; returns them and their CRC-32, computed as they arrive."""
        buffer = bytearray(size)
        view = memoryview(buffer)
        received, crc = 0, 0
        while received < size:
            count = sock.recv_into(view[received:], min(RECEIVE_LIMIT, size - received))
            if count == 0:
                raise ConnectionLostError(f"connection closed after {received} of {size} bytes")
            crc = zlib.crc32(view[received:received + count], crc)
            received += count
        return buffer, crc

    def _receive_frame(self, sock: socket.socket) -> tuple[MessageType, bytearray]:
        header = decode_header(bytes(self._receive_exact(sock, HEADER_SIZE)[0]), self.max_payload)
        payload, crc = self._receive_exact(sock, header.length) if header.length else (bytearray(), 0)
        return check_payload(header, payload, crc), payload

    # -- server ------------------------------------------------------------------------------------
    def initialize_server(self) -> None:
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError as error:
            listener.close()
            raise ProtocolError(f"cannot listen on {self.host}:{self.port} ({error.strerror}): pass another --port "
                                "(0 picks a free one) or stop the other server") from error
        listener.listen(8)
        listener.setblocking(False)
        self.listener = listener
        self.port = listener.getsockname()[1]
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, "listener")

    def _accept(self) -> list[tuple[ServerEvent, Any, Any]]:
        try:
            sock, address = self.listener.accept()
        except BlockingIOError:
            return []
        sock.setblocking(True)
        sock.settimeout(self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.connection is not None and self._client_gone():
            self.drop_client(None)
        if self.connection is not None:
            log.info("refusing %s: busy with another client", address)
            try:
                sock.settimeout(1.0)
                self._send_frame(sock, MessageType.ERROR, b"busy: the board is serving another client; retry later")
            except OSError:
                pass
            _linger_close(sock)
            return []
        self.connection = sock
        self.selector.register(sock, selectors.EVENT_READ, "client")
        self.client_deadline = time.monotonic() + self.timeout
        log.info("client %s connected", address)
        return [(ServerEvent.CONNECTED, address, None)]

    def drop_client(self, reason: str | None = None) -> list[tuple[ServerEvent, Any, Any]]:
        """Close the current client, telling it why first when a reason is given."""
        if self.connection is None:
            return []
        sock, self.connection = self.connection, None
        self.selector.unregister(sock)
        if reason:
            log.info("dropping client: %s", reason)
            try:
                sock.settimeout(1.0)
                self._send_frame(sock, MessageType.ERROR, reason.encode())
            except OSError:
                pass
        _linger_close(sock)
        return [(ServerEvent.DISCONNECTED, reason, None)]

    def wait_for_activity(self, poll: float = 0.5) -> list[tuple[ServerEvent, Any, Any]]:
        """Wait at most `poll` seconds; returns events: connections, messages, disconnections."""
        if self.connection is not None:
            remaining = self.client_deadline - time.monotonic()
            if remaining <= 0:
                return self.drop_client(f"no request for {self.timeout:g} s: disconnecting")
            poll = min(poll, remaining)
        events: list[tuple[ServerEvent, Any, Any]] = []
        ready = sorted(key.data for key, _ in self.selector.select(timeout=poll))  # "client" before "listener"
        for source in ready:
            if source == "listener":
                events += self._accept()
            elif self.connection is not None:
                events += self._read_client_message()
        return events

    def _client_gone(self) -> bool:
        """Whether the current client has closed its side (so a new one need not be told "busy")."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _read_client_message(self) -> list[tuple[ServerEvent, Any, Any]]:
        try:
            message_type, payload = self._receive_frame(self.connection)
        except FrameError as error:
            if error.resynchronisable:
                self.request_failure(str(error))
                self.client_deadline = time.monotonic() + self.timeout
                return []
            return self.drop_client(str(error))
        except ConnectionLostError:
            return self.drop_client(None)
        except socket.timeout:
            return self.drop_client(f"frame incomplete after {self.timeout:g} s: disconnecting")
        except OSError:
            return self.drop_client(None)  # reset by the peer: nobody left to tell
        self.client_deadline = time.monotonic() + self.timeout
        return [(ServerEvent.MESSAGE, message_type, payload)]

    def request_success(self, data: bytes = b"") -> None:
        self.send_message(MessageType.OK, data)

    def request_failure(self, reason: str) -> None:
        self.send_message(MessageType.ERROR, reason.encode())

    def close_server(self) -> None:
        self.drop_client(None)
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None

    # -- both sides --------------------------------------------------------------------------------
    def send_message(self, message_type: MessageType, payload: bytes = b"") -> None:
        if self.connection is None:
            raise ConnectionLostError("not connected")
        try:
            self._send_frame(self.connection, message_type, payload)
        except OSError as error:
            raise ConnectionLostError(f"sending {message_type.name} failed ({error}): the peer closed the "
                                      "connection; see the server's log") from error

    def receive_data(self) -> tuple[MessageType, bytearray]:
        if self.connection is None:
            raise ConnectionLostError("not connected")
        try:
            return self._receive_frame(self.connection)
        except socket.timeout as error:
            raise ConnectionLostError(f"the board did not answer within {self.timeout:g} s: check that the server "
                                      "is running, or raise --timeout for slow models") from error
        except ConnectionLostError as error:
            raise ConnectionLostError(f"the board closed the connection ({error}): see the server's log") from error
        except OSError as error:
            raise ConnectionLostError(f"connection to the board failed ({error}): see the server's log") from error

    def disconnect(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

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

    def _expect_ok(self, request: MessageType) -> bytearray:
        message_type, payload = self.receive_data()
        if message_type == MessageType.ERROR:
            raise RemoteError(f"the board refused {request.name}: {bytes(payload).decode(errors='replace')}")
        if message_type != MessageType.OK:
            raise ProtocolError(f"the board answered {request.name} with {message_type.name}, expected OK")
        return payload

    def request(self, message_type: MessageType, payload: bytes = b"") -> bytearray:
        """Send a request and return the payload of its OK (ERROR raises RemoteError)."""
        self.send_message(message_type, payload)
        return self._expect_ok(message_type)

    def upload_model(self, model: bytes) -> dict[str, Any]:
        return json.loads(bytes(self.request(MessageType.MODEL, model)) or b"{}")

    def upload_input(self, data: bytes) -> None:
        self.request(MessageType.DATA, data)

    def request_processing(self) -> float:
        self.send_message(MessageType.PROCESS)
        self._expect_ok(MessageType.PROCESS)
        start = time.perf_counter()
        self._expect_ok(MessageType.PROCESS)
        return time.perf_counter() - start

    def download_output(self) -> bytearray:
        return self.request(MessageType.OUTPUT)

    def download_statistics(self) -> dict[str, Any]:
        return json.loads(bytes(self.request(MessageType.STATS)) or b"{}")

    # -- arguments ---------------------------------------------------------------------------------
    @classmethod
    def form_argparse(cls):
        parser, group = super().form_argparse()
        group.add_argument("--host", default="127.0.0.1",
                           help="Address the server listens on / the client connects to (default: %(default)s)")
        group.add_argument("--port", type=int, default=12345,
                           help="TCP port; 0 makes the server pick a free one and print it (default: %(default)s)")
        group.add_argument("--packet-size", type=int, default=32768,
                           help="Size of the pieces payloads travel in (default: %(default)s)")
        group.add_argument("--timeout", type=float, default=60.0,
                           help="Seconds any read may wait; idle clients are dropped after it (default: %(default)s)")
        group.add_argument("--max-payload", type=int, default=DEFAULT_MAX_PAYLOAD,
                           help="Largest payload accepted, in bytes (default: %(default)s)")
        return parser, group

    @classmethod
    def from_argparse(cls, args: argparse.Namespace) -> "NetworkProtocol":
        return cls(args.host, args.port, args.packet_size, args.timeout, args.max_payload)
