"""In-process transport: a server and its clients in one process, linked by queues (no sockets).

It runs the same client session and the same serving loop as the TCP transport, so a runtime (or a
change to the session) can be tested without the network: messages arrive whole, as a socket
transport delivers them once framed and checked.
"""

from __future__ import annotations

import queue
from typing import Any

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.errors import ConnectionLostError
from edge_ai_lib.core.runtimeprotocol import RuntimeProtocol, ServerEvent
from edge_ai_lib.core.wire import MessageType

BUSY_MESSAGE = b"busy: the board is serving another client; retry later"
# A client's session is the queue of the server's answers to it (None in it: the server closed the session).
Replies = queue.SimpleQueue


class MemoryProtocol(RuntimeProtocol):
    """Messages through queues: one instance serves, the others are clients of it.

    `server` is, for a client, the server instance to connect to (None for the server itself).
    """

    arguments = (Argument("timeout", float, 60.0, "Seconds a client waits for an answer before it reports the "
                          "server lost (a serving loop that is not running would otherwise hang it)"),)

    def __init__(self, server: MemoryProtocol | None = None, **settings: Any):
        self.server = server
        self.configure(settings)
        self.requests: queue.SimpleQueue[tuple[Replies, ServerEvent, Any, Any]] = queue.SimpleQueue()
        self.current: Replies | None = None  # server side: the client being served
        self.connection: Replies | None = None  # client side: this client's session

    # -- client side -------------------------------------------------------------------------------
    def initialize_client(self) -> None:
        if self.server is None:
            raise ConnectionLostError("this MemoryProtocol is a server: make a client with MemoryProtocol(server)")
        self.connection = Replies()
        self.server.requests.put((self.connection, ServerEvent.CONNECTED, "memory", None))

    def send_message(self, message_type: MessageType, payload: bytes = b"", crc_trailer: bool = False,
                     crc32c: bool = False) -> None:
        if self.connection is None:
            raise ConnectionLostError("not connected: call initialize_client first")
        self.server.requests.put((self.connection, ServerEvent.MESSAGE, MessageType(message_type), bytearray(payload)))

    def receive_message(self) -> tuple[MessageType, bytearray]:
        if self.connection is None:
            raise ConnectionLostError("not connected: call initialize_client first")
        try:
            reply = self.connection.get(timeout=self.timeout)
        except queue.Empty:
            raise ConnectionLostError(f"the server did not answer within {self.timeout:g} s: start its serving "
                                      "loop (InferenceServer.serve) or raise the timeout for slow models") from None
        if reply is None:
            self.connection = None
            raise ConnectionLostError("the server closed the session: see its log")
        return reply

    def disconnect(self) -> None:
        if self.connection is not None:
            self.server.requests.put((self.connection, ServerEvent.DISCONNECTED, None, None))
            self.connection = None

    # -- server side -------------------------------------------------------------------------------
    def initialize_server(self) -> None:
        """Nothing to open: clients reach this instance through `MemoryProtocol(server)`."""

    def wait_for_activity(self, poll: float = 0.5) -> list[tuple[ServerEvent, Any, Any]]:
        try:
            connection, event, detail, payload = self.requests.get(timeout=poll)
        except queue.Empty:
            return []
        if event == ServerEvent.CONNECTED:
            if self.current is not None:  # one client at a time, as over TCP
                connection.put((MessageType.ERROR, bytearray(BUSY_MESSAGE)))
                connection.put(None)
                return []
            self.current = connection
            return [(event, detail, None)]
        if connection is not self.current:
            return []  # what a dropped or refused client sent after its session ended
        if event == ServerEvent.DISCONNECTED:
            self.current = None
            return [(event, None, None)]
        return [(event, detail, payload)]

    def reply(self, message_type: MessageType, payload: bytes | bytearray | memoryview = b"") -> bool:
        if self.current is None:
            return False
        self.current.put((MessageType(message_type), bytearray(payload)))
        return True

    def drop_client(self, reason: str | None = None) -> list[tuple[ServerEvent, Any, Any]]:
        connection, self.current = self.current, None
        if connection is None:
            return []
        if reason:
            connection.put((MessageType.ERROR, bytearray(reason.encode())))
        connection.put(None)
        return [(ServerEvent.DISCONNECTED, reason, None)]

    def close_server(self) -> None:
        self.drop_client(None)
