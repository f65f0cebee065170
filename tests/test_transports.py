"""The session and the serving loop are written once: a second transport (queues in one process) runs
the same session as TCP, with a real ONNX Runtime model, and the benchmark client runs over it too."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from protocol_helpers import one_batch, tiny_onnx_model

from edge_ai_lib.core.errors import ConnectionLostError, RemoteError
from edge_ai_lib.core.runtimeprotocol import ClientSession
from edge_ai_lib.core.serving import InferenceServer
from edge_ai_lib.core.wire import MessageType, decode_tensors, encode_tensors
from edge_ai_lib.runtimeprotocols.memory import MemoryProtocol
from edge_ai_lib.runtimes.onnxruntime import ONNXRuntime


class MemoryBoard:
    """An ONNX Runtime board serving over a MemoryProtocol in a background thread."""

    def __init__(self, directory, resource_interval: float = 0.0):
        self.transport = MemoryProtocol()
        self.model_path = directory / "board-model.onnx"
        self.server = InferenceServer(ONNXRuntime(self.model_path), self.transport,
                                      resource_interval=resource_interval)
        self.transport.initialize_server()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.server.serve, args=(self.stop,), daemon=True)
        self.thread.start()

    def client(self) -> MemoryProtocol:
        client = MemoryProtocol(self.transport, timeout=10)
        client.initialize_client()
        return client

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@pytest.fixture
def board(tmp_path):
    running = MemoryBoard(tmp_path, resource_interval=0.01)
    yield running
    running.close()


def stored_models(board: MemoryBoard) -> list:
    return sorted(board.model_path.parent.glob("board-model*"))


def test_a_full_session_over_the_memory_transport_computes_the_model(board, tmp_path):
    weights = tiny_onnx_model(tmp_path / "tiny.onnx")
    client = board.client()
    session = ClientSession(client)
    outputs = one_batch(session, (tmp_path / "tiny.onnx").read_bytes())
    assert np.allclose(outputs, np.ones((2, 4)) @ weights + 1, atol=1e-6)
    inputs = np.arange(12, dtype=np.float32).reshape(3, 4)
    session.upload_input(encode_tensors([inputs]))
    assert session.request_processing() >= 0
    (outputs,) = decode_tensors(session.download_output())
    assert np.allclose(outputs, inputs @ weights + 1, atol=1e-5)
    stats = session.download_statistics()
    assert len(stats["inference_s"]) == 1 and stats["inference_s"][0] > 0
    assert all({"t", "cpu_percent", "rss_bytes"} <= set(sample) for sample in stats["resources"])
    assert len(stored_models(board)) == 1  # the session's private copy of the model
    client.disconnect()
    deadline = time.monotonic() + 5
    while stored_models(board) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not stored_models(board), "the session's model was not removed when it ended"


def test_the_serving_loop_answers_errors_the_same_over_any_transport(board, tmp_path):
    tiny_onnx_model(tmp_path / "tiny.onnx")
    client = board.client()
    session = ClientSession(client)
    with pytest.raises(RemoteError, match="no model is loaded: send MODEL first"):
        session.request_processing()
    with pytest.raises(RemoteError, match="STATS carries no payload, 3 bytes came with it"):
        session.request(MessageType.STATS, b"abc")
    session.upload_model((tmp_path / "tiny.onnx").read_bytes())
    with pytest.raises(RemoteError, match="send PROCESS before OUTPUT"):
        session.download_output()
    with pytest.raises(RemoteError, match="does not fit the model's input"):
        session.upload_input(encode_tensors([np.ones((1, 5), np.float32)]))
    with pytest.raises(RemoteError, match="busy"):  # one client at a time, as over TCP
        ClientSession(board.client()).upload_model(b"")
    client.disconnect()
    next_client = board.client()
    assert one_batch(ClientSession(next_client), (tmp_path / "tiny.onnx").read_bytes()).shape == (2, 3)
    next_client.disconnect()


def test_a_client_whose_server_is_not_serving_is_told_so(tmp_path):
    client = MemoryProtocol(MemoryProtocol(), timeout=0.1)
    client.initialize_client()
    with pytest.raises(ConnectionLostError, match="start its serving loop"):
        ClientSession(client).upload_model(b"model")


def test_the_benchmark_client_runs_over_the_memory_transport(board, digits, tmp_path):
    from edge_ai_lib.scenarios.inference_client import run_session

    features = 8 * 8
    weights = tiny_onnx_model(tmp_path / "digits.onnx", features=features, classes=10)

    class FlatWrapper:  # the host-side conversions of a model that takes flattened 8x8 images
        def convert_input_to_bytes(self, inputs):
            return encode_tensors([inputs.reshape(len(inputs), features).astype(np.float32)])

        def convert_output_from_bytes(self, data):
            return decode_tensors(data)[0]

        def postprocess_outputs(self, outputs):
            return outputs

    client = board.client()
    try:
        result = run_session(client, FlatWrapper(), digits, (tmp_path / "digits.onnx").read_bytes(), warmup=2,
                             max_samples=20, progress=False)
    finally:
        client.disconnect()
    inputs, _ = digits.get_split_arrays("validation")
    expected = inputs[:20].reshape(20, features) @ weights + 1
    assert np.allclose(result.outputs, expected, atol=1e-4)
    assert result.quality["sample_count"] == 20
    assert len(result.board.samples_s) == len(result.host.samples_s)
    assert result.model_info["runtime"] == "onnxruntime"
