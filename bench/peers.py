"""Peer processes of the bench: a bare echo, a bare sink and a protocol sink, each on 127.0.0.1.

    python bench/peers.py echo ROUNDS | sink SIZE REPEATS | protocol-sink SIZE PACKET_SIZE SPOOL

Prints `port N` once listening; serves one client, then exits. The protocol sink answers STATS as the
board's server does (with its frame flags) and MODEL with the payload's length; with SPOOL=1 it spools
large MODEL payloads to a temporary directory, as the board's server does, and removes them. At exit
it prints `rss_peak_delta BYTES`: how much its peak RSS (VmHWM) rose above its RSS before serving.
"""

import json
import socket
import sys
import tempfile
from pathlib import Path

from edge_ai_lib.core.runtimeprotocol import ServerEvent, SpooledPayload
from edge_ai_lib.core.serving import FRAME_FLAGS
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


def memory_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmHWM, the peak, is this program's own: getrusage's
    ru_maxrss would include the pages of the process that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def protocol_sink(size: int, packet_size: int, spool: int) -> None:
    server = NetworkProtocol("127.0.0.1", 0, packet_size=packet_size, timeout=30, max_payload=size + 1)
    server.initialize_server()
    with tempfile.TemporaryDirectory(prefix="edge-ai-bench-spool-") as directory:
        if spool:
            server.spool_directory = Path(directory)
        print(f"port {server.port}", flush=True)
        before = memory_kib("VmRSS") * 1024
        connected = False
        while True:
            for event, message_type, payload in server.wait_for_activity(poll=1.0):
                if event == ServerEvent.CONNECTED:
                    connected = True
                elif event == ServerEvent.DISCONNECTED and connected:
                    server.close_server()
                    after = memory_kib("VmHWM") * 1024
                    print(f"rss_peak_delta {after - before}", flush=True)
                    return
                elif event == ServerEvent.MESSAGE and message_type == MessageType.STATS:
                    server.reply(MessageType.OK, json.dumps({"inference_s": [], "resources": [],
                                                             "frame_flags": FRAME_FLAGS}).encode())
                elif event == ServerEvent.MESSAGE and message_type == MessageType.MODEL:
                    server.reply(MessageType.OK, json.dumps({"size_bytes": len(payload)}).encode())
                    if isinstance(payload, SpooledPayload):
                        payload.discard()
                    del payload


if __name__ == "__main__":
    mode, *numbers = sys.argv[1:]
    {"echo": echo, "sink": sink, "protocol-sink": protocol_sink}[mode](*map(int, numbers))
