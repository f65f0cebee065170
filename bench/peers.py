"""Peer processes of the bench: a bare echo, a bare sink and a protocol sink, each on 127.0.0.1.

    python bench/peers.py echo ROUNDS | sink SIZE REPEATS | protocol-sink SIZE PACKET_SIZE

Prints `port N` once listening; serves one client, then exits.
"""

import socket
import sys

from edge_ai_lib.core.runtimeprotocol import ServerEvent
from edge_ai_lib.core.wire import MessageType
from edge_ai_lib.runtimeprotocols.network import NetworkProtocol


def listen() -> socket.socket:
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"port {listener.getsockname()[1]}", flush=True)
    return listener


def echo(rounds: int) -> None:
    with listen() as listener:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            for _ in range(rounds):
                data = b""
                while len(data) < 24:
                    data += conn.recv(24 - len(data))
                conn.sendall(data)


def sink(size: int, repeats: int) -> None:
    with listen() as listener:
        conn, _ = listener.accept()
        view = memoryview(bytearray(size))
        with conn:
            for _ in range(repeats):
                received = 0
                while received < size:
                    received += conn.recv_into(view[received:], size - received)
                conn.sendall(b"k")


def protocol_sink(size: int, packet_size: int) -> None:
    server = NetworkProtocol("127.0.0.1", 0, packet_size=packet_size, timeout=30, max_payload=size + 1)
    server.initialize_server()
    print(f"port {server.port}", flush=True)
    connected = False
    while True:
        for event, message_type, payload in server.wait_for_activity(poll=1.0):
            if event == ServerEvent.CONNECTED:
                connected = True
            elif event == ServerEvent.DISCONNECTED and connected:
                server.close_server()
                return
            elif event == ServerEvent.MESSAGE and message_type == MessageType.MODEL:
                server.reply(MessageType.OK, str(len(payload)).encode())


if __name__ == "__main__":
    mode, *numbers = sys.argv[1:]
    {"echo": echo, "sink": sink, "protocol-sink": protocol_sink}[mode](*map(int, numbers))
