"""The RuntimeProtocol interface: messages between the host (client) and a board (server)."""

from __future__ import annotations

import enum
from typing import Any

from edge_ai_lib.core.args import ArgumentsMixin


class MessageType(enum.IntEnum):
    """Message types of the benchmark session; the numbers are the wire values."""

    OK = 0
    ERROR = 1
    DATA = 2
    MODEL = 3
    PROCESS = 4
    OUTPUT = 5
    STATS = 6


class RuntimeProtocol(ArgumentsMixin):
    """Carries messages between client and server; implementations choose the transport.

    Every request is answered with OK (possibly with data) or ERROR (with a reason). A session is:
    MODEL -> OK; then per batch DATA -> OK, PROCESS -> OK (start) ... OK (done), OUTPUT -> OK + data,
    STATS -> OK + JSON.
    """

    arguments_title = "Runtime protocol arguments"

    # -- both sides --------------------------------------------------------------------------------
    def initialize_server(self) -> None:
        raise NotImplementedError

    def initialize_client(self) -> None:
        raise NotImplementedError

    def wait_for_activity(self) -> list[tuple[MessageType, bytes]]:
        """Block until messages arrive (server side); returns them parsed."""
        raise NotImplementedError

    def send_data(self, data: bytes) -> None:
        raise NotImplementedError

    def receive_data(self) -> tuple[MessageType, bytes]:
        raise NotImplementedError

    def send_message(self, message_type: MessageType, payload: bytes = b"") -> None:
        raise NotImplementedError

    def parse_message(self, frame: bytes) -> tuple[MessageType, bytes]:
        raise NotImplementedError

    def disconnect(self) -> None:
        raise NotImplementedError

    # -- client side -------------------------------------------------------------------------------
    def upload_input(self, data: bytes) -> None:
        raise NotImplementedError

    def upload_model(self, model: bytes) -> None:
        raise NotImplementedError

    def request_processing(self) -> float:
        """Ask for inference; returns the host-side time between the two OKs, in seconds."""
        raise NotImplementedError

    def download_output(self) -> bytes:
        raise NotImplementedError

    def download_statistics(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- server side -------------------------------------------------------------------------------
    def request_success(self, data: bytes = b"") -> None:
        raise NotImplementedError

    def request_failure(self, reason: str) -> None:
        raise NotImplementedError
