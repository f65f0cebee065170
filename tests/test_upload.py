"""Large models over TCP: streamed with the CRC trailer, spooled to a private file, never left behind.

Real servers on 127.0.0.1, real ONNX models of a few MiB (larger than the 1 MiB receive buffer, so the
spooling path runs), real full disks (a small tmpfs mounted by the test: root here and in CI).
"""

from __future__ import annotations

import json
import socket
import time
import zlib

import numpy as np
import pytest
from protocol_helpers import ThreadedBoard, connect, frame, good_session, read_frame, tiny_onnx_model
from standalone_board import StandaloneBoard
from test_files import mount_tmpfs  # noqa: F401 - the fixture

from edge_ai_lib.core.errors import RemoteError
from edge_ai_lib.core.runtimeprotocol import ClientSession
from edge_ai_lib.core.wire import CRC32C_AVAILABLE, TRAILER, MessageType, decode_tensors, encode_header, encode_tensors
from edge_ai_lib.runtimeprotocols.network import NetworkProtocol

FEATURES = 1 << 16  # W is FEATURES x 8 float32: a 2 MiB model


@pytest.fixture
def large_model(tmp_path):
    path = tmp_path / "large.onnx"
    weights = tiny_onnx_model(path, features=FEATURES, classes=8)
    return path.read_bytes(), weights


def leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".receiving-"))


def board_files(board: ThreadedBoard) -> list[str]:
    return sorted(p.name for p in board.runtime.save_model_path.parent.iterdir())


def test_a_large_model_is_streamed_spooled_and_computes(tmp_path, large_model):
    model, weights = large_model
    assert len(model) > 2 << 20
    board = ThreadedBoard(tmp_path, timeout=10, max_payload=8 << 20)
    try:
        client = NetworkProtocol("127.0.0.1", board.port, timeout=10)
        client.initialize_client()
        session = ClientSession(client)
        info = session.upload_model(model)
        assert info["model_size_bytes"] == len(model)
        assert "crc_trailer" in session.board_frame_flags()
        assert ("crc32c" in session.board_frame_flags()) == CRC32C_AVAILABLE
        inputs = np.random.default_rng(0).standard_normal((2, FEATURES)).astype(np.float32)
        session.upload_input(encode_tensors([inputs]))
        session.request_processing()
        (outputs,) = decode_tensors(session.download_output())
        np.testing.assert_allclose(outputs, inputs @ weights + 1, rtol=1e-4, atol=1e-3)
        assert leftovers(tmp_path) == []
        stored = [name for name in board_files(board) if name.startswith("board-model-")]
        assert len(stored) == 1 and (tmp_path / stored[0]).stat().st_size == len(model)
        client.disconnect()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(n.startswith("board-model-") for n in board_files(board)):
            time.sleep(0.05)
        assert [n for n in board_files(board) if n.startswith("board-model-") or n.startswith(".receiving-")] == []
    finally:
        board.close()


@pytest.mark.parametrize("damage", ["trailer", "payload"])
def test_a_streamed_model_with_a_bad_checksum_is_refused_and_leaves_no_file(tmp_path, large_model, damage):
    model, _ = large_model
    board = ThreadedBoard(tmp_path, timeout=10, max_payload=8 << 20)
    try:
        with connect(board.port, timeout=10) as sock:
            payload = bytearray(model)
            crc = zlib.crc32(payload)
            if damage == "payload":
                payload[len(payload) // 2] ^= 0xFF
            else:
                crc ^= 1
            sock.sendall(encode_header(MessageType.MODEL, payload, crc_trailer=True) + bytes(payload)
                         + TRAILER.pack(crc))
            answer = read_frame(sock)
            assert answer[0] == MessageType.ERROR and b"CRC mismatch" in answer[1]
            assert leftovers(tmp_path) == []
            # the stream is still in step: a small good model loads on the same connection
            small = tmp_path / "small.onnx"
            tiny_onnx_model(small)
            sock.sendall(frame(MessageType.MODEL, small.read_bytes()))
            answer = read_frame(sock)
            assert answer[0] == MessageType.OK, answer
    finally:
        board.close()


def test_a_client_gone_mid_model_leaves_no_file_and_the_board_serves_on(tmp_path, large_model):
    model, _ = large_model
    board = ThreadedBoard(tmp_path, timeout=10, max_payload=8 << 20)
    try:
        sock = connect(board.port)
        sock.sendall(encode_header(MessageType.MODEL, model, crc_trailer=True) + model[:len(model) // 2])
        time.sleep(0.3)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # reset mid-payload
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and leftovers(tmp_path):
            time.sleep(0.05)
        assert leftovers(tmp_path) == []
        small = tmp_path / "small.onnx"
        tiny_onnx_model(small)
        assert good_session(board.port, small.read_bytes()).shape == (2, 3)
    finally:
        board.close()


def test_a_full_disk_while_receiving_a_model_is_a_clear_error_and_loses_nothing(tmp_path, mount_tmpfs,
                                                                                 large_model):
    model, _ = large_model
    disk = mount_tmpfs("1m")
    board = ThreadedBoard(disk, timeout=10, max_payload=8 << 20)
    try:
        client = NetworkProtocol("127.0.0.1", board.port, timeout=10)
        client.initialize_client()
        session = ClientSession(client)
        with pytest.raises(RemoteError) as refused:
            session.upload_model(model)
        message = str(refused.value)
        assert "cannot store a payload of" in message and "No space left on device" in message
        assert "free space there" in message
        assert leftovers(disk) == []
        # the same session goes on: a model that fits loads and runs
        small = tmp_path / "small.onnx"
        tiny_onnx_model(small)
        session.upload_model(small.read_bytes())
        session.upload_input(encode_tensors([np.ones((2, 4), np.float32)]))
        session.request_processing()
        assert decode_tensors(session.download_output())[0].shape == (2, 3)
        client.disconnect()
    finally:
        board.close()


@pytest.mark.parametrize("takes_trailer", [False, True])
def test_a_board_written_from_the_document_takes_a_large_model_plain_or_with_the_trailer(takes_trailer):
    """The document's board: without `frame_flags` it gets a plain frame; with "crc_trailer" listed,
    it reads the trailer as the document describes it."""
    board = StandaloneBoard(fast=True, crc_trailer=takes_trailer)
    try:
        client = NetworkProtocol("127.0.0.1", board.port, timeout=10, max_payload=8 << 20)
        client.initialize_client()
        session = ClientSession(client)
        blob = np.random.default_rng(1).bytes(3 << 20)
        info = session.upload_model(blob)
        assert info["model_size_bytes"] == len(blob)
        assert board.requests[:2] == [6, 3]  # STATS (asking for its frame flags), then MODEL
        assert board.model_crc_trailers == [takes_trailer]
        assert board.model_digest == zlib.crc32(blob)
        client.disconnect()
    finally:
        board.close()


def test_a_small_model_is_sent_plain_without_asking(tmp_path):
    board = StandaloneBoard(fast=True, crc_trailer=True)
    try:
        client = NetworkProtocol("127.0.0.1", board.port, timeout=10)
        client.initialize_client()
        ClientSession(client).upload_model(b"\x01" * 1000)
        assert board.requests == [3] and board.model_crc_trailers == [False]
        client.disconnect()
    finally:
        board.close()


def test_the_stats_answer_lists_the_frame_flags_before_any_model(tmp_path):
    board = ThreadedBoard(tmp_path)
    try:
        with connect(board.port) as sock:
            sock.sendall(frame(MessageType.STATS))
            kind, payload = read_frame(sock)
            answer = json.loads(payload)
        assert kind == MessageType.OK and answer["inference_s"] == [] and "crc_trailer" in answer["frame_flags"]
    finally:
        board.close()


def test_without_the_crc32c_package_the_client_streams_with_crc32(tmp_path, large_model, monkeypatch):
    """A host without `crc32c` (simulated: the package is installed here) uses the CRC-32 trailer."""
    import edge_ai_lib.core.runtimeprotocol as runtimeprotocol

    monkeypatch.setattr(runtimeprotocol, "CRC32C_AVAILABLE", False)
    sent = []
    original = NetworkProtocol.send_message

    def recording(self, message_type, payload=b"", crc_trailer=False, crc32c=False):
        sent.append((MessageType(message_type).name, crc_trailer, crc32c))
        return original(self, message_type, payload, crc_trailer, crc32c)

    monkeypatch.setattr(NetworkProtocol, "send_message", recording)
    model, _ = large_model
    board = ThreadedBoard(tmp_path, timeout=10, max_payload=8 << 20)
    try:
        client = NetworkProtocol("127.0.0.1", board.port, timeout=10)
        client.initialize_client()
        assert ClientSession(client).upload_model(model)["model_size_bytes"] == len(model)
        client.disconnect()
    finally:
        board.close()
    assert sent == [("STATS", False, False), ("MODEL", True, False)]


def test_a_board_without_crc32c_refuses_a_crc32c_frame_by_name(tmp_path, monkeypatch):
    """A board without the package (simulated in this process) never lists "crc32c"; a client that
    sends it anyway is told what is missing."""
    import edge_ai_lib.core.wire as wire

    monkeypatch.setattr(wire, "_crc32c", None)
    board = ThreadedBoard(tmp_path)
    try:
        with connect(board.port) as sock:
            sock.sendall(encode_header(MessageType.STATS, b"", crc_trailer=True, crc32c=True) + b"\0\0\0\0")
            kind, payload = read_frame(sock)
        assert kind == MessageType.ERROR and b"CRC-32C" in payload and b"crc32c" in payload
    finally:
        board.close()
