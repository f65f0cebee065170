"""A board served in a thread with a real socket, raw frame tools, and a tiny ONNX model."""

from __future__ import annotations

import socket
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

from edge_ai_lib.core.runtimeprotocol import ClientSession
from edge_ai_lib.core.serving import InferenceServer
from edge_ai_lib.core.wire import HEADER_SIZE, MessageType, decode_header, decode_tensors, encode_header, encode_tensors
from edge_ai_lib.runtimeprotocols.network import NetworkProtocol
from edge_ai_lib.runtimes.onnxruntime import ONNXRuntime


def tiny_onnx_model(path: Path, features: int = 4, classes: int = 3) -> np.ndarray:
    """y = x @ W + b with a dynamic batch; returns W (b is all ones)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(features * classes, dtype=np.float32).reshape(features, classes) / 10
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["output"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.ones(classes, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return weights


class ThreadedBoard:
    """An ONNX Runtime board serving on 127.0.0.1 (free port) in a background thread."""

    def __init__(self, directory: Path, timeout: float = 1.0, max_payload: int = 1 << 20, packet_size: int = 4096):
        self.protocol = NetworkProtocol("127.0.0.1", 0, packet_size=packet_size, timeout=timeout,
                                        max_payload=max_payload)
        self.runtime = ONNXRuntime(directory / "board-model.onnx")
        self.server = InferenceServer(self.runtime, self.protocol)
        self.stop = threading.Event()
        self.protocol.initialize_server()
        self.port = self.protocol.port
        self.thread = threading.Thread(target=self.server.serve, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def frame(message_type: int, payload: bytes = b"") -> bytes:
    return encode_header(message_type, payload) + payload


def raw_header(magic=b"EAIT", version=1, message_type=0, length=0, payload_crc=0, header_crc=None) -> bytes:
    head = struct.pack(">4sBBHQI", magic, version, message_type, 0, length, payload_crc)
    return head + struct.pack(">I", zlib.crc32(head) if header_crc is None else header_crc)


def read_frame(sock: socket.socket) -> tuple[MessageType, bytes] | None:
    """One frame from a raw socket, or None when the peer closed the connection."""
    data = b""
    while len(data) < HEADER_SIZE:
        chunk = sock.recv(HEADER_SIZE - len(data))
        if not chunk:
            return None
        data += chunk
    header = decode_header(data, 1 << 30)
    payload = b""
    while len(payload) < header.length:
        chunk = sock.recv(header.length - len(payload))
        if not chunk:
            return None
        payload += chunk
    return MessageType(header.message_type), payload


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def good_session(port: int, model: bytes, features: int = 4) -> np.ndarray:
    """A complete session with the real client over TCP; returns the outputs of one batch."""
    client = NetworkProtocol("127.0.0.1", port, timeout=5)
    client.initialize_client()
    try:
        return one_batch(ClientSession(client), model, features)
    finally:
        client.disconnect()


def one_batch(session: ClientSession, model: bytes, features: int = 4) -> np.ndarray:
    """MODEL, DATA, PROCESS, OUTPUT, STATS over any connected transport; returns the outputs of one batch."""
    info = session.upload_model(model)
    assert info["runtime"] == "onnxruntime"
    session.upload_input(encode_tensors([np.ones((2, features), np.float32)]))
    session.request_processing()
    (outputs,) = decode_tensors(session.download_output())
    stats = session.download_statistics()
    assert len(stats["inference_s"]) == 1
    return outputs


class MemoryBoard:
    """An ONNX Runtime board serving over the in-process transport in a background thread.

    `seed_only` makes it answer MODEL with the seed's fields alone, as a board written from the first
    protocol description would (no thread count, provenance or list of requests: the seed's path).
    """

    SEED_FIELDS = ("load_time_s", "model_size_bytes", "runtime")

    def __init__(self, directory: Path, resource_interval: float = 0.0, num_threads: int | None = None,
                 seed_only: bool = False):
        from edge_ai_lib.core.serving import InferenceServer
        from edge_ai_lib.runtimeprotocols.memory import MemoryProtocol

        self.transport = MemoryProtocol()
        self.model_path = directory / "board-model.onnx"
        self.server = InferenceServer(ONNXRuntime(self.model_path, num_threads=num_threads), self.transport,
                                      resource_interval=resource_interval)
        if seed_only:
            load = self.server.load
            self.server.load = lambda model: {k: v for k, v in load(model).items() if k in self.SEED_FIELDS}
        self.transport.initialize_server()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.server.serve, args=(self.stop,), daemon=True)
        self.thread.start()

    def client(self):
        from edge_ai_lib.runtimeprotocols.memory import MemoryProtocol

        client = MemoryProtocol(self.transport, timeout=10)
        client.initialize_client()
        return client

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
