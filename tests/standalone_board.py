"""A board written from docs/protocol.md alone: socket, struct and zlib, nothing from edge_ai_lib.

It is what a board in another language would be: it reads frames and tensor lists as the document
says, "runs" a fixed linear model in plain Python (y = flatten(x) @ W, W[i][j] = ((i * 7 + j) % 11) / 10),
and answers MODEL, DATA, PROCESS, OUTPUT and STATS, and with `fast`, INFER (listed in its answer to MODEL). The tests run the real client against it, so a
document that leaves something out, or a client that needs more than the document says, fails here.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import zlib

MAGIC = b"EAIT"
HEADER = struct.Struct(">4sBBHQI")  # magic, version, type, flags, payload length, payload CRC; then header CRC
OK, ERROR, DATA, MODEL, PROCESS, OUTPUT, STATS, INFER = range(8)
FLOAT32 = 0
CLASSES = 10


def weight(i: int, j: int) -> float:
    return ((i * 7 + j) % 11) / 10


def frame(message_type: int, payload: bytes = b"") -> bytes:
    head = HEADER.pack(MAGIC, 1, message_type, 0, len(payload), zlib.crc32(payload) if payload else 0)
    return head + struct.pack(">I", zlib.crc32(head)) + payload


def read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[int, bytes, bool] | None:
    """(type, payload, whether the CRC came as a trailer); flag bit 0 is only sent once listed in STATS."""
    head = read_exact(sock, 24)
    if head is None:
        return None
    magic, version, message_type, flags, length, payload_crc = HEADER.unpack(head[:20])
    (header_crc,) = struct.unpack(">I", head[20:])
    if magic != MAGIC or version != 1 or zlib.crc32(head[:20]) != header_crc:
        raise ValueError("bad header")
    payload = read_exact(sock, length) if length else b""
    if payload is None:
        return None
    trailer = bool(flags & 1)
    if trailer:
        tail = read_exact(sock, 4)
        if tail is None:
            return None
        (payload_crc,) = struct.unpack(">I", tail)
    if (zlib.crc32(payload) if payload else 0) != payload_crc:
        raise ValueError("bad payload CRC")
    return message_type, payload, trailer


def parse_float_tensors(payload: bytes) -> list[tuple[tuple[int, ...], list[float]]]:
    """Tensor list: u32 count (big-endian); each: u8 dtype, u8 rank, rank x u64 dims (big-endian),
    then the elements, C order, little-endian."""
    (count,) = struct.unpack_from(">I", payload, 0)
    offset, tensors = 4, []
    for _ in range(count):
        dtype, rank = struct.unpack_from(">BB", payload, offset)
        offset += 2
        shape = struct.unpack_from(f">{rank}Q", payload, offset)
        offset += 8 * rank
        if dtype != FLOAT32:
            raise ValueError(f"this board takes float32 only, got dtype {dtype}")
        elements = 1
        for dimension in shape:
            elements *= dimension
        values = list(struct.unpack_from(f"<{elements}f", payload, offset))
        offset += 4 * elements
        tensors.append((shape, values))
    return tensors


def float_tensor(shape: tuple[int, ...], values: list[float]) -> bytes:
    return (struct.pack(">I", 1) + struct.pack(">BB", FLOAT32, len(shape)) + struct.pack(f">{len(shape)}Q", *shape)
            + struct.pack(f"<{len(values)}f", *values))


def compute(inputs: tuple[tuple[int, ...], list[float]]) -> tuple[tuple[int, list[float]], float]:
    """The model, y = flatten(x) @ W; returns ((batch, flat outputs), seconds it took)."""
    start = time.perf_counter()
    shape, values = inputs
    batch = shape[0]
    features = len(values) // batch
    flat = [sum(values[b * features + i] * weight(i, j) for i in range(features))
            for b in range(batch) for j in range(CLASSES)]
    return (batch, flat), time.perf_counter() - start


class StandaloneBoard:
    """Serves one client at a time on 127.0.0.1 (a free port) in a thread, until `close`."""

    def __init__(self, fast: bool = False, crc_trailer: bool = False):
        self.fast = fast
        self.crc_trailer = crc_trailer  # list "crc_trailer" in STATS' frame_flags
        self.model_crc_trailers: list[bool] = []
        self.model_digest: int | None = None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.requests: list[int] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            with sock:
                self._session(sock)

    def _session(self, sock: socket.socket) -> None:
        inputs, outputs, times = None, None, []
        while (request := read_frame(sock)) is not None:
            message_type, payload, trailer = request
            self.requests.append(message_type)
            if message_type == MODEL:
                self.model_crc_trailers.append(trailer)
                self.model_digest = zlib.crc32(payload)
                info = {"load_time_s": 0.0, "model_size_bytes": len(payload), "runtime": "standalone",
                        "runtime_version": "1", "num_threads": 1, "io": {}}
                if self.fast:
                    info["requests"] = ["MODEL", "DATA", "PROCESS", "OUTPUT", "STATS", "INFER"]
                sock.sendall(frame(OK, json.dumps(info).encode()))
            elif message_type == DATA:
                (inputs,) = parse_float_tensors(payload)
                sock.sendall(frame(OK))
            elif message_type == PROCESS:
                if inputs is None:
                    sock.sendall(frame(ERROR, b"no inputs: send DATA before PROCESS"))
                    continue
                sock.sendall(frame(OK))
                outputs, seconds = compute(inputs)
                times.append(seconds)
                sock.sendall(frame(OK))
            elif message_type == INFER and self.fast:
                # OK: the runtime call's seconds as a big-endian f64, then the outputs' tensor list
                outputs, seconds = compute(parse_float_tensors(payload)[0])
                times.append(seconds)
                batch, flat = outputs
                sock.sendall(frame(OK, struct.pack(">d", seconds) + float_tensor((batch, CLASSES), flat)))
            elif message_type == OUTPUT:
                batch, flat = outputs
                sock.sendall(frame(OK, float_tensor((batch, CLASSES), flat)))
            elif message_type == STATS:
                stats = {"inference_s": times, "resources": []}
                if self.crc_trailer:
                    stats["frame_flags"] = ["crc_trailer"]
                sock.sendall(frame(OK, json.dumps(stats).encode()))
                times = []
            else:
                sock.sendall(frame(ERROR, f"unknown request {message_type}".encode()))

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.listener.close()
