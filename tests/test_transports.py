"""The session and the serving loop are written once: a second transport (queues in one process) runs
the same session as TCP, with a real ONNX Runtime model, and the benchmark client runs over it too."""

from __future__ import annotations

import time

import numpy as np
import pytest
from protocol_helpers import MemoryBoard, one_batch, tiny_onnx_model

from edge_ai_lib.core.errors import ConnectionLostError, RemoteError
from edge_ai_lib.core.runtimeprotocol import ClientSession
from edge_ai_lib.core.wire import MessageType, decode_tensors, encode_tensors
from edge_ai_lib.runtimeprotocols.memory import MemoryProtocol


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


@pytest.mark.parametrize("fast", [False, True], ids=["seed-path", "fast-path"])
def test_a_board_written_from_the_document_alone_serves_the_real_client(trained_torch_digits, digits, fast):
    """tests/standalone_board.py imports nothing from edge_ai_lib: the document must be enough, on both paths."""
    from standalone_board import CLASSES, INFER, PROCESS, StandaloneBoard, weight

    from edge_ai_lib.runtimeprotocols.network import NetworkProtocol
    from edge_ai_lib.scenarios.inference_client import FAST_PATH, SEED_PATH, run_session

    wrapper, _ = trained_torch_digits
    board = StandaloneBoard(fast=fast)
    try:
        client = NetworkProtocol("127.0.0.1", board.port, timeout=10)
        client.initialize_client()
        try:
            result = run_session(client, wrapper, digits, b"any model bytes", warmup=2, max_samples=20,
                                 progress=False)
        finally:
            client.disconnect()
    finally:
        board.close()
    inputs, _ = digits.get_split_arrays("validation")
    flat = np.asarray(wrapper.preprocess_input(inputs[:20]), dtype=np.float32).reshape(20, -1)
    weights = np.array([[weight(i, j) for j in range(CLASSES)] for i in range(flat.shape[1])])
    assert np.allclose(result.outputs, flat @ weights, rtol=1e-4, atol=1e-4)
    assert result.requests == (FAST_PATH if fast else SEED_PATH)
    assert (INFER in board.requests) == fast and (PROCESS in board.requests) != fast
    assert len(result.board.samples_s) == 20
    # causal host time: it contains the board's call, so the overhead is never negative
    assert all(h >= b for h, b in zip(result.host.samples_s, result.board.samples_s))
    assert result.model_info["runtime"] == "standalone"


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_the_fast_path_and_the_seed_path_give_identical_outputs(framework, digits, tmp_path, request):
    """The same compiled model, the same board: INFER and DATA/PROCESS/OUTPUT/STATS agree bit for bit."""
    from edge_ai_lib.compilers.onnxruntime import ONNXRuntimeCompiler
    from edge_ai_lib.scenarios.inference_client import FAST_PATH, SEED_PATH, run_session

    wrapper, _ = request.getfixturevalue(f"trained_{framework}_digits")
    compiler = ONNXRuntimeCompiler(digits, tmp_path / "m.onnx")
    compiler.compile_model(wrapper)
    results = {}
    for fast in (True, False):
        board = MemoryBoard(tmp_path)
        try:
            client = board.client()
            results[fast] = run_session(client, wrapper, digits, compiler.compiled_model_path.read_bytes(),
                                        warmup=1, max_samples=50, progress=False, fast=fast)
            client.disconnect()
        finally:
            board.close()
    assert results[True].requests == FAST_PATH and results[False].requests == SEED_PATH
    assert np.array_equal(results[True].outputs, results[False].outputs)
    assert results[True].quality["accuracy"] == results[False].quality["accuracy"]
    for result in results.values():
        assert all(h >= b for h, b in zip(result.host.samples_s, result.board.samples_s))
