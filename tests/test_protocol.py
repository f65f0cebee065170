"""The wire format and the server's robustness, over real sockets on loopback.

Each bad input gets ERROR (or a clean close where the stream cannot be resynchronised), and a good
client is served right after.
"""

import socket
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_helpers import ThreadedBoard, connect, frame, good_session, raw_header, read_frame, tiny_onnx_model

from edge_ai_lib.core.errors import ProtocolError
from edge_ai_lib.core.wire import (
    HEADER_SIZE,
    FrameError,
    MessageType,
    decode_header,
    decode_tensors,
    encode_header,
    encode_tensors,
)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    weights = tiny_onnx_model(path)
    return path.read_bytes(), weights


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    running = ThreadedBoard(tmp_path_factory.mktemp("board"), timeout=1.0)
    yield running
    running.close()


def expect_error_then(sock, text, closed):
    message_type, payload = read_frame(sock)
    assert message_type == MessageType.ERROR and text in payload.decode()
    if closed:
        assert read_frame(sock) is None


# -- the codec ------------------------------------------------------------------------------------
def test_header_is_24_bytes_and_round_trips():
    header = encode_header(MessageType.DATA, b"abc")
    assert len(header) == HEADER_SIZE == 24 and header[:4] == b"EAIT"
    decoded = decode_header(header, 100)
    assert (decoded.message_type, decoded.length) == (MessageType.DATA, 3)


def test_tensor_list_round_trip_and_bounds():
    tensors = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([[-1, 5]], dtype=np.int8)]
    back = decode_tensors(encode_tensors(tensors))
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(tensors, back))
    payload = encode_tensors([np.zeros((1000, 1000), np.float32)])
    with pytest.raises(ProtocolError, match="needs 4000000 bytes"):
        decode_tensors(payload[:100])
    with pytest.raises(ProtocolError, match="stray bytes"):
        decode_tensors(payload + b"x")


def test_oversized_length_is_refused_from_the_header_alone():
    with pytest.raises(FrameError, match="exceeds the limit") as error:
        decode_header(raw_header(length=1 << 40), 1 << 20)
    assert not error.value.resynchronisable


# -- the server -----------------------------------------------------------------------------------
def test_good_session_computes_the_model(board, model):
    data, weights = model
    outputs = good_session(board.port, data)
    assert np.allclose(outputs, np.ones((2, 4)) @ weights + 1, atol=1e-6)


def test_bad_magic(board, model):
    with connect(board.port) as sock:
        sock.sendall(raw_header(magic=b"HTTP"))
        expect_error_then(sock, "bad magic", closed=True)
    good_session(board.port, model[0])


def test_wrong_version(board, model):
    with connect(board.port) as sock:
        sock.sendall(raw_header(version=9))
        expect_error_then(sock, "protocol version 9 is not supported", closed=True)
    good_session(board.port, model[0])


def test_corrupt_header_crc(board, model):
    with connect(board.port) as sock:
        sock.sendall(raw_header(header_crc=1234))
        expect_error_then(sock, "header CRC mismatch", closed=True)
    good_session(board.port, model[0])


def test_length_over_the_limit(board, model):
    with connect(board.port) as sock:
        sock.sendall(raw_header(message_type=MessageType.MODEL, length=(1 << 20) + 1))
        expect_error_then(sock, "exceeds the limit of 1048576 bytes", closed=True)
    good_session(board.port, model[0])


def test_truncated_payload_times_out(board, model):
    with connect(board.port) as sock:
        sock.sendall(raw_header(message_type=MessageType.DATA, length=100) + b"x" * 10)
        start = time.monotonic()
        expect_error_then(sock, "frame incomplete", closed=True)
        assert time.monotonic() - start < 5
    good_session(board.port, model[0])


def test_bad_payload_crc_keeps_the_connection(board, model):
    with connect(board.port) as sock:
        bad = bytearray(frame(MessageType.MODEL, model[0]))
        bad[-1] ^= 0xFF
        sock.sendall(bad)
        expect_error_then(sock, "payload CRC mismatch", closed=False)
        sock.sendall(frame(MessageType.MODEL, model[0]))  # same connection, still in step
        assert read_frame(sock)[0] == MessageType.OK


def test_unknown_type_keeps_the_connection(board, model):
    with connect(board.port) as sock:
        sock.sendall(frame(42, b"hello"))
        expect_error_then(sock, "unknown message type 42", closed=False)
        sock.sendall(frame(MessageType.MODEL, model[0]))
        assert read_frame(sock)[0] == MessageType.OK


@pytest.mark.parametrize("request_type", [MessageType.PROCESS, MessageType.OUTPUT, MessageType.DATA])
def test_requests_before_model(board, model, request_type):
    with connect(board.port) as sock:
        payload = encode_tensors([np.ones((1, 4), np.float32)]) if request_type == MessageType.DATA else b""
        sock.sendall(frame(request_type, payload))
        expect_error_then(sock, "no model is loaded: send MODEL first", closed=False)
    good_session(board.port, model[0])


def test_output_before_process(board, model):
    with connect(board.port) as sock:
        sock.sendall(frame(MessageType.MODEL, model[0]))
        assert read_frame(sock)[0] == MessageType.OK
        sock.sendall(frame(MessageType.OUTPUT))
        expect_error_then(sock, "send PROCESS before OUTPUT", closed=False)


def test_corrupt_model_file(board, model):
    with connect(board.port) as sock:
        sock.sendall(frame(MessageType.MODEL, b"\x08\x01garbage" * 50))
        expect_error_then(sock, "cannot load ONNX model", closed=False)
        sock.sendall(frame(MessageType.MODEL, model[0]))
        assert read_frame(sock)[0] == MessageType.OK


def test_input_of_the_wrong_shape(board, model):
    with connect(board.port) as sock:
        sock.sendall(frame(MessageType.MODEL, model[0]))
        read_frame(sock)
        sock.sendall(frame(MessageType.DATA, encode_tensors([np.ones((1, 5), np.float32)])))
        expect_error_then(sock, "does not fit the model's input", closed=False)


def test_client_disconnecting_mid_payload(board, model):
    sock = connect(board.port)
    sock.sendall(raw_header(message_type=MessageType.MODEL, length=len(model[0])) + model[0][:100])
    sock.close()
    good_session(board.port, model[0])


def test_client_that_sends_nothing_is_dropped(board, model):
    with connect(board.port) as sock:
        start = time.monotonic()
        expect_error_then(sock, "no request for 1 s", closed=True)
        assert 0.8 < time.monotonic() - start < 5
    good_session(board.port, model[0])


def test_second_client_is_busy_at_once(board, model):
    with connect(board.port) as first:
        first.sendall(frame(MessageType.MODEL, model[0]))
        assert read_frame(first)[0] == MessageType.OK
        start = time.monotonic()
        with connect(board.port) as second:
            expect_error_then(second, "busy", closed=True)
        assert time.monotonic() - start < 0.5
    good_session(board.port, model[0])


def test_port_in_use_names_the_fix(board):
    from edge_ai_lib.runtimeprotocols.network import NetworkProtocol

    with pytest.raises(ProtocolError, match="pass another --port"):
        NetworkProtocol("127.0.0.1", board.port).initialize_server()


# -- property test: random frames, one connection each ----------------------------------------------
def _send_and_collect(port: int, data: bytes) -> list[tuple[MessageType, bytes]]:
    """Send one frame, close our side, and read every answer until the server closes."""
    with connect(port, timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may have refused the frame and closed already
        answers = []
        while True:
            try:
                answer = read_frame(sock)
            except (ConnectionResetError, FrameError):
                raise AssertionError("the server sent something that is not a valid frame")
            if answer is None:
                return answers
            answers.append(answer)


valid_frames = st.builds(
    lambda message_type, payload: frame(message_type, payload),
    st.integers(0, 255), st.binary(max_size=2048))
mangled_frames = st.builds(
    lambda message_type, length, payload, crc: raw_header(message_type=message_type, length=length,
                                                          payload_crc=crc) + payload,
    st.integers(0, 255), st.integers(0, 1 << 21), st.binary(max_size=512), st.integers(0, 2**32 - 1))
garbage = st.binary(min_size=1, max_size=128)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(data=st.one_of(valid_frames, valid_frames, valid_frames, mangled_frames, garbage))
def test_random_frames_get_error_or_close(board, data):
    for message_type, _ in _send_and_collect(board.port, data):
        assert message_type in (MessageType.OK, MessageType.ERROR)


def test_server_serves_a_good_session_after_the_random_frames(board, model):
    start = time.monotonic()
    good_session(board.port, model[0])
    assert time.monotonic() - start < 2


# -- the document's example frames are what the encoder writes ---------------------------------------------
def crc32c_by_definition(data: bytes) -> int:
    """CRC-32C (reflected Castagnoli polynomial 0x82F63B78), one bit at a time."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_the_documents_example_frames_match_the_encoder_byte_for_byte():
    import re
    from pathlib import Path

    from edge_ai_lib.core.wire import encode_infer_answer

    text = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    examples = dict(re.findall(r"```\nexample: (.*?)\n([0-9a-f ]+)\n```", text))
    tensors = encode_tensors([np.array([[1.0, -2.0]], np.float32)])
    expected = {
        "a tensor list holding one float32 tensor of shape (1, 2): 1.0 and -2.0": tensors,
        "DATA carrying that tensor list": frame(MessageType.DATA, tensors),
        "PROCESS": frame(MessageType.PROCESS),
        "OK with no payload": frame(MessageType.OK),
        "INFER carrying that tensor list": frame(MessageType.INFER, tensors),
        "OK answering INFER, board time 0.5 s, the same tensor list as outputs":
            frame(MessageType.OK, encode_infer_answer(0.5, tensors)),
        "MODEL carrying the 4 bytes 01 02 03 04, with the CRC-32 trailer (flags 0x0001)":
            encode_header(MessageType.MODEL, b"\x01\x02\x03\x04", crc_trailer=True) + b"\x01\x02\x03\x04"
            + zlib.crc32(b"\x01\x02\x03\x04").to_bytes(4, "big"),
        # the CRC-32C here is computed bit by bit from its definition, not by the package the code uses
        "the same MODEL with a CRC-32C trailer (flags 0x0003)":
            encode_header(MessageType.MODEL, b"\x01\x02\x03\x04", crc_trailer=True, crc32c=True)
            + b"\x01\x02\x03\x04" + crc32c_by_definition(b"\x01\x02\x03\x04").to_bytes(4, "big"),
    }
    assert set(examples) == set(expected)
    for name, data in expected.items():
        assert bytes.fromhex(examples[name]) == data, name


def test_a_refused_data_clears_the_inputs(board, model):
    with connect(board.port) as sock:
        sock.sendall(frame(MessageType.MODEL, model[0]))
        assert read_frame(sock)[0] == MessageType.OK
        sock.sendall(frame(MessageType.DATA, encode_tensors([np.ones((1, 4), np.float32)])))
        assert read_frame(sock)[0] == MessageType.OK
        sock.sendall(frame(MessageType.DATA, encode_tensors([np.ones((1, 5), np.float32)])))
        assert read_frame(sock)[0] == MessageType.ERROR
        sock.sendall(frame(MessageType.PROCESS))
        expect_error_then(sock, "no inputs: send DATA before PROCESS", closed=False)
