"""The RuntimeProtocol interface (a transport of whole messages) and the client session written above it.

Layers, bottom up: `core.wire` says what the bytes are; a `RuntimeProtocol` implementation moves
whole, checked messages between a host and a board (TCP in `runtimeprotocols.network`, queues in
one process in `runtimeprotocols.memory`); `ClientSession` here is the host's half of the session of
docs/protocol.md and `core.serving.InferenceServer` the board's half. A new transport (serial, an SSH
channel) implements the few methods of `RuntimeProtocol` and gets both halves unchanged.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from edge_ai_lib.core.args import ArgumentsMixin
from edge_ai_lib.core.errors import ProtocolError, RemoteError
from edge_ai_lib.core.wire import CRC32C_AVAILABLE, MessageType, decode_infer_answer

log = logging.getLogger(__name__)


# Models from this size on are sent with the CRC trailer to boards that take it (one STATS first to ask).
STREAMED_UPLOAD_BYTES = 1 << 20


class ServerEvent(enum.Enum):
    """What `wait_for_activity` reports on the server side."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    MESSAGE = "message"


class RuntimeProtocol(ArgumentsMixin):
    """Carries whole messages between client and server; implementations choose the medium.

    A transport delivers each message whole and checked (type and payload), or reports why not; it
    knows nothing of what the messages mean. It never lets a client's failure escape its server side:
    a lost or misbehaving client is dropped and reported as `ServerEvent.DISCONNECTED`.
    """

    arguments_title = "Runtime protocol arguments"
    # Server side: where a transport may write a large MODEL payload as it arrives (a SpooledPayload
    # is delivered instead of bytes); the board's server sets it next to its model files. None, or a
    # transport that ignores it, delivers bytes.
    spool_directory: Path | None = None

    # -- client side -------------------------------------------------------------------------------
    def initialize_client(self) -> None:
        """Connect to the server; raise ConnectionLostError saying how to reach it when it cannot."""
        raise NotImplementedError

    def send_message(self, message_type: MessageType, payload: bytes = b"", crc_trailer: bool = False,
                     crc32c: bool = False) -> None:
        """Send one message to the server; raise ConnectionLostError when it cannot go out.

        `crc_trailer` (only for a board that listed "crc_trailer" in its `frame_flags`) streams the
        payload with its checksum after it instead of in the header, CRC-32C with `crc32c` (only for a
        board that listed "crc32c"); transports without checksums ignore both.
        """
        raise NotImplementedError

    def receive_message(self) -> tuple[MessageType, bytes | bytearray]:
        """Block until one whole, checked message arrives from the server (ConnectionLostError if none will)."""
        raise NotImplementedError

    def disconnect(self) -> None:
        """End this client's session; the server removes what the session stored."""
        raise NotImplementedError

    # -- server side -------------------------------------------------------------------------------
    def initialize_server(self) -> None:
        """Start accepting clients (listening, opening a device); raise ProtocolError naming the fix."""
        raise NotImplementedError

    def wait_for_activity(self, poll: float = 0.5) -> list[tuple[ServerEvent, Any, Any]]:
        """Wait at most `poll` seconds; returns (event, message type or detail, payload) tuples.

        Returning after `poll` even when nothing happened lets the serving loop notice that it must stop.
        """
        raise NotImplementedError

    def reply(self, message_type: MessageType, payload: bytes | bytearray | memoryview = b"") -> bool:
        """Answer the current client; returns whether the answer went out.

        A client that cannot be answered is dropped, never raised about: nothing a client does may
        stop the server.
        """
        raise NotImplementedError

    def drop_client(self, reason: str | None = None) -> list[tuple[ServerEvent, Any, Any]]:
        """Close the current client, telling it `reason` first when given; returns the DISCONNECTED event."""
        raise NotImplementedError

    def close_server(self) -> None:
        """Stop accepting clients and release everything `initialize_server` took."""
        raise NotImplementedError


class SpooledPayload:
    """A large payload received straight into a private file (never held in memory).

    The receiver writes it to `path` as the bytes arrive and hands it over only once it is whole and
    its CRC checks out; whoever takes it renames the file (`take`) or it is removed (`discard`).
    """

    def __init__(self, path: Path, length: int):
        self.path = path
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __bool__(self) -> bool:
        return self.length > 0

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def take(self, destination: Path) -> None:
        """Make the payload `destination` (a rename within one file system: no copy)."""
        os.replace(self.path, destination)

    def discard(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as error:
            log.warning("cannot remove %s (%s)", self.path, error.strerror)



class ClientSession:
    """The host's half of the session of docs/protocol.md, over any connected transport.

    Written once here so that every transport gets the same requests, the same checks of the board's
    answers and the same host-side timing.

    Parameters
    ----------
    transport : RuntimeProtocol
        A transport whose `initialize_client` has succeeded; the caller disconnects it.
    """

    def __init__(self, transport: RuntimeProtocol):
        self.transport = transport
        self.frame_flags: list[str] | None = None  # learnt from the board's STATS before a large MODEL

    def board_frame_flags(self) -> list[str]:
        """The frame flags the board understands (its STATS answer's `frame_flags`), asked once.

        STATS is asked because every board answers it at any time, also one that knows only the seed's
        document; a board that answers ERROR, or leaves the field out, gets plain frames only.
        """
        if self.frame_flags is None:
            try:
                flags = self.download_statistics().get("frame_flags", [])
            except RemoteError:
                flags = []
            self.frame_flags = [flag for flag in flags if isinstance(flag, str)] if isinstance(flags, list) else []
        return self.frame_flags

    def request(self, message_type: MessageType, payload: bytes = b"") -> bytes | bytearray:
        """Send a request and return the payload of its OK (ERROR raises RemoteError)."""
        self.transport.send_message(message_type, payload)
        return self.expect_ok(message_type)

    def expect_ok(self, request: MessageType) -> bytes | bytearray:
        """The payload of the OK answering `request`; RemoteError with the board's reason on ERROR."""
        message_type, payload = self.transport.receive_message()
        if message_type == MessageType.ERROR:
            raise RemoteError(f"the board refused {request.name}: {bytes(payload).decode(errors='replace')}")
        if message_type != MessageType.OK:
            raise ProtocolError(f"the board answered {request.name} with {message_type.name}, expected OK")
        return payload

    def upload_model(self, model: bytes | bytearray | memoryview) -> dict[str, Any]:
        """Send the compiled model; returns what the board says of it (load time, size, runtime, I/O).

        A large model goes with its CRC after it (no pass over it before the first byte leaves) when
        the board understands that frame flag.
        """
        flags = self.board_frame_flags() if len(model) >= STREAMED_UPLOAD_BYTES else []
        self.transport.send_message(MessageType.MODEL, model, crc_trailer="crc_trailer" in flags,
                                    crc32c="crc_trailer" in flags and "crc32c" in flags and CRC32C_AVAILABLE)
        return _json_object(self.expect_ok(MessageType.MODEL), MessageType.MODEL)

    def upload_input(self, data: bytes) -> None:
        """Send the inputs of the next inference (a tensor list, see `core.wire.encode_tensors`)."""
        self.request(MessageType.DATA, data)

    def request_processing(self) -> float:
        """Ask for inference; returns the host-side time from sending PROCESS to its second OK, in seconds.

        The clock starts before the request leaves, so the time always contains the board's runtime
        call: host time minus board time (the protocol's overhead) is never negative.
        """
        start = time.perf_counter()
        self.transport.send_message(MessageType.PROCESS)
        self.expect_ok(MessageType.PROCESS)
        self.expect_ok(MessageType.PROCESS)
        return time.perf_counter() - start

    def infer(self, data: bytes) -> tuple[float, float, memoryview]:
        """The fast path, for boards whose answer to MODEL lists INFER: one round trip per batch.

        Returns (host seconds from sending INFER to its OK, the board's time of the runtime call, the
        outputs' tensor list).
        """
        start = time.perf_counter()
        self.transport.send_message(MessageType.INFER, data)
        payload = self.expect_ok(MessageType.INFER)
        host_seconds = time.perf_counter() - start
        board_seconds, outputs = decode_infer_answer(payload)
        return host_seconds, board_seconds, outputs

    def download_output(self) -> bytes | bytearray:
        """The outputs of the last inference, as a tensor list."""
        return self.request(MessageType.OUTPUT)

    def download_statistics(self) -> dict[str, Any]:
        """The board's times and resource samples since the previous STATS (docs/protocol.md)."""
        return _json_object(self.request(MessageType.STATS), MessageType.STATS)


def _json_object(payload: bytes | bytearray, request: MessageType) -> dict[str, Any]:
    """The JSON object a board sends with OK; anything else is a clear ProtocolError, not a traceback."""
    try:
        value = json.loads(bytes(payload) or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"the board's answer to {request.name} is not JSON ({error}): the server is not an "
                            "edge_ai_lib inference_server of this version; install the same edge_ai_lib on "
                            "the board") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"the board's answer to {request.name} is a JSON {type(value).__name__}, expected an "
                            "object: the server is not an edge_ai_lib inference_server of this version")
    return value
