"""No client can take a board down: the real server process, real sockets on 127.0.0.1, every failure.

Each test drives the server as an attacker or an unlucky client would, then checks that the process
is alive and serves a good session.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import psutil
import pytest
from protocol_helpers import connect, frame, good_session, raw_header, read_frame, tiny_onnx_model

from edge_ai_lib.boards.lock import BoardLock
from edge_ai_lib.core.errors import BoardError, ProtocolError
from edge_ai_lib.core.wire import MAX_TENSORS, MessageType, decode_tensors, encode_tensors

TESTS = Path(__file__).resolve().parent
PROTOCOL = "edge_ai_lib.runtimeprotocols.network.NetworkProtocol"
ORT = "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime"


class ServerProcess:
    """`inference_server` as a board runs it, in its own process, on a free loopback port."""

    def __init__(self, directory: Path, *arguments: str, runtime: str = ORT, env: dict | None = None):
        self.log_path = directory / "server.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge_ai_lib.scenarios.inference_server", PROTOCOL, runtime, "--host", "127.0.0.1",
             "--port", "0", "--save-model-path", str(directory / "received.onnx"), "--resource-interval", "0",
             *arguments],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                 **(env or {})})
        line = self.process.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line + self.log_path.read_text()
        self.port = int(line.strip().rsplit(":", 1)[1])

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
        self.log.close()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    tiny_onnx_model(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = ServerProcess(tmp_path_factory.mktemp("server"), "--timeout", "1", "--max-payload", str(64 << 20))
    yield running
    running.close()


def assert_serves(server: ServerProcess, model: bytes) -> None:
    assert server.alive(), f"the server died: {server.log_path.read_text()[-2000:]}"
    deadline = time.monotonic() + 10
    while True:  # a client dropped a moment ago may still hold the session for a few ms
        try:
            good_session(server.port, model)
            return
        except ProtocolError as error:
            if "busy" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def reset_close(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a crashed or killed client's kernel does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- every message, every point, FIN and RST ------------------------------------------------------------
DATA = encode_tensors([np.ones((2, 4), np.float32)])
SETUP = {  # the requests a message needs before it, so that it reaches its handler's real work
    MessageType.MODEL: [],
    MessageType.DATA: [MessageType.MODEL],
    MessageType.PROCESS: [MessageType.MODEL, MessageType.DATA],
    MessageType.OUTPUT: [MessageType.MODEL, MessageType.DATA, MessageType.PROCESS],
    MessageType.STATS: [MessageType.MODEL, MessageType.DATA, MessageType.PROCESS],
    MessageType.INFER: [MessageType.MODEL],
}
POINTS = ["mid-header", "mid-payload", "before-reply", "after-first-reply", "after-reply"]


def payload_of(message_type: MessageType, model: bytes) -> bytes:
    return {MessageType.MODEL: model, MessageType.DATA: DATA, MessageType.INFER: DATA}.get(message_type, b"")


def replies(message_type: MessageType) -> int:
    return 2 if message_type == MessageType.PROCESS else 1


def drop_points() -> list:
    """(message type, point) pairs that exist: no mid-payload drop without a payload, no drop between
    two replies of a request answered once."""
    pairs = []
    for message_type in SETUP:
        for point in POINTS:
            if point == "mid-payload" and message_type not in (MessageType.MODEL, MessageType.DATA, MessageType.INFER):
                continue
            if point == "after-first-reply" and replies(message_type) == 1:
                continue
            pairs.append(pytest.param(message_type, point, id=f"{message_type.name}-{point}"))
    return pairs


@pytest.mark.parametrize("close", ["fin", "rst"])
@pytest.mark.parametrize("message_type, point", drop_points())
def test_a_client_dropped_anywhere_leaves_the_server_serving(server, model, message_type, point, close):
    payload = payload_of(message_type, model)
    for _ in range(3):  # a reset races with the server's reply: try it a few times
        sock = connect(server.port)
        for earlier in SETUP[message_type]:
            sock.sendall(frame(earlier, payload_of(earlier, model)))
            for _ in range(replies(earlier)):
                assert read_frame(sock)[0] == MessageType.OK
        whole = frame(message_type, payload)
        if point == "mid-header":
            sock.sendall(whole[:10])
        elif point == "mid-payload":
            sock.sendall(whole[:24 + len(payload) // 2])
        else:
            sock.sendall(whole)
            if point == "after-first-reply":
                read_frame(sock)
            elif point == "after-reply":
                for _ in range(replies(message_type)):
                    read_frame(sock)
        reset_close(sock) if close == "rst" else sock.close()
        assert_serves(server, model)


# -- memory ------------------------------------------------------------------------------------------------
def test_many_tiny_tensors_are_refused_before_anything_is_allocated(server, model):
    before = server.rss()
    count = 1_000_000  # rank-0 int8 scalars: 3 bytes each on the wire, ~400 bytes each once decoded
    payload = struct.pack(">I", count) + b"\x02\x00\x07" * count
    with connect(server.port) as sock:
        sock.sendall(frame(MessageType.MODEL, model))
        assert read_frame(sock)[0] == MessageType.OK
        start = time.monotonic()
        sock.sendall(frame(MessageType.DATA, payload))
        message_type, reason = read_frame(sock)
        assert message_type == MessageType.ERROR
        assert f"at most {MAX_TENSORS} are accepted" in reason.decode()
        assert time.monotonic() - start < 2
    assert server.rss() - before < 32 << 20
    assert_serves(server, model)


def test_a_header_announcing_a_large_payload_allocates_nothing_ahead(server, model):
    before = server.rss()
    with connect(server.port) as sock:
        sock.sendall(raw_header(message_type=MessageType.MODEL, length=60 << 20) + b"x" * 1000)
        time.sleep(0.5)
        assert server.rss() - before < 8 << 20  # 60 MiB announced, 1000 bytes sent
        message_type, reason = read_frame(sock)
        assert message_type == MessageType.ERROR and "frame incomplete after 1 s" in reason.decode()
    assert_serves(server, model)


def test_decoding_costs_at_most_twice_the_frame():
    for tensors in ([np.zeros((), np.int8)] * MAX_TENSORS, [np.zeros((256, 1024), np.float32)],
                    [np.zeros((3, 3), np.float16)] * 100):
        payload = bytearray(encode_tensors(tensors))
        tracemalloc.start()
        decoded = decode_tensors(payload)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert len(decoded) == len(tensors)
        assert peak <= 2 * len(payload) + (64 << 10), (len(tensors), peak, len(payload))


@pytest.mark.parametrize("payload, message", [
    (struct.pack(">I", MAX_TENSORS + 1), "at most 256 are accepted"),
    (struct.pack(">I", 1) + struct.pack(">BB", 0, 9), "rank 9 is over the limit of 8"),
    (struct.pack(">I", 1) + struct.pack(">BB", 0, 2) + struct.pack(">2Q", 1 << 30, 1 << 30), "needs 4611686018427387904"),
    (struct.pack(">I", 1) + struct.pack(">BB", 0, 2) + struct.pack(">2Q", 0, 1 << 40), "a dimension is over 2147483648"),
    (struct.pack(">I", 2) + struct.pack(">BB", 0, 0) + b"\0\0\0\0", "tensor 1 of 2 has no header"),
    (struct.pack(">I", 1) + struct.pack(">BB", 9, 0), "unknown dtype code 9"),
])
def test_malformed_tensor_lists_are_named(payload, message):
    with pytest.raises(ProtocolError, match=message):
        decode_tensors(payload)


# -- slow, silent and many clients ----------------------------------------------------------------------
def test_a_client_sending_a_byte_at_a_time_is_dropped_and_others_told_busy(server, model):
    whole = frame(MessageType.MODEL, model)
    with connect(server.port) as slow:
        slow.sendall(whole[:30])
        start = time.monotonic()
        with connect(server.port) as other:  # while the slow client holds the session
            expect_busy_at = time.monotonic()
            assert read_frame(other) == (MessageType.ERROR, b"busy: the board is serving another client; retry later")
            assert time.monotonic() - expect_busy_at < 0.5
        sent = 30
        answer = None
        slow.settimeout(0.2)
        while time.monotonic() - start < 5 and answer is None:
            try:
                slow.sendall(whole[sent:sent + 1])
                sent += 1
                answer = read_frame(slow)
            except socket.timeout:
                continue
            except OSError:
                break
        assert answer is not None and answer[0] == MessageType.ERROR, "the slow client was never dropped"
        assert "frame incomplete after 1 s" in answer[1].decode()
        assert time.monotonic() - start < 3
    assert_serves(server, model)


def test_two_hundred_connections_at_once_all_get_an_answer(tmp_path, model):
    server = ServerProcess(tmp_path, "--timeout", "30")  # the session below must outlast the 200 connections
    holder = connect(server.port)
    holder.sendall(frame(MessageType.MODEL, model))
    assert read_frame(holder)[0] == MessageType.OK
    selector = selectors.DefaultSelector()
    sockets = []
    try:
        for _ in range(200):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
            sockets.append(sock)
            selector.register(sock, selectors.EVENT_READ, bytearray())
        answered = 0
        deadline = time.monotonic() + 10
        while answered < 200 and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                try:
                    chunk = key.fileobj.recv(4096)
                except OSError:
                    chunk = b""
                key.data.extend(chunk)
                if not chunk or len(key.data) >= 24:
                    selector.unregister(key.fileobj)
                    assert b"busy" in bytes(key.data), bytes(key.data)
                    answered += 1
        assert answered == 200
        # the session in progress was not disturbed
        holder.sendall(frame(MessageType.DATA, DATA))
        assert read_frame(holder)[0] == MessageType.OK
    finally:
        for sock in sockets:
            sock.close()
        holder.close()
    assert_serves(server, model)
    server.close()


def test_listening_on_every_interface_warns(tmp_path):
    # Bound to every interface for a moment; nothing but the printed line is read from it.
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_ai_lib.scenarios.inference_server", PROTOCOL, ORT, "--host", "0.0.0.0",
         "--port", "0", "--save-model-path", str(tmp_path / "m.onnx"), "--resource-interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().startswith("listening on 0.0.0.0:")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    assert "listening on every network interface" in stderr
    assert "listen on 127.0.0.1 and reach the board through an SSH tunnel" in stderr


# -- what the client says about a board that misbehaves ---------------------------------------------------
class ScriptedBoard:
    """A server that answers every request OK with fixed payloads (what a broken or foreign board sends)."""

    def __init__(self, model_reply: bytes, stats_reply: bytes):
        import threading

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.replies = {MessageType.MODEL: model_reply, MessageType.STATS: stats_reply,
                        MessageType.OUTPUT: encode_tensors([np.ones((1, 10), np.float32)])}
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        with self.listener:
            sock, _ = self.listener.accept()
            with sock:
                while (request := read_frame(sock)) is not None:
                    for _ in range(replies(request[0])):
                        sock.sendall(frame(MessageType.OK, self.replies.get(request[0], b"")))


GOOD_STATS = json.dumps({"inference_s": [0.001], "resources": []}).encode()


@pytest.mark.parametrize("model_reply, stats_reply, message", [
    (b"<html>", GOOD_STATS, "answer to MODEL is not JSON"),
    (b"{}", b"[1, 2]", "answer to STATS is a JSON list, expected an object"),
    (b"{}", b'{"inference_s": ["fast"], "resources": []}', "inference time of 'fast', not a number of seconds"),
    (b"{}", b'{"inference_s": [], "resources": []}', "a list of one time per PROCESS"),
    (b"{}", b'{"inference_s": [0.1], "resources": 5}', "'resources' is not a list"),
])
def test_a_board_that_answers_nonsense_gets_a_sentence(digits, model_reply, stats_reply, message):
    from edge_ai_lib.runtimeprotocols.network import NetworkProtocol
    from edge_ai_lib.scenarios.inference_client import run_session

    class Wrapper:  # the host-side model conversions only: the board is scripted, there is no model
        def convert_input_to_bytes(self, inputs):
            return encode_tensors([inputs.astype(np.float32)])

        def convert_output_from_bytes(self, data):
            return decode_tensors(data)[0]

        def postprocess_outputs(self, outputs):
            return outputs

    board = ScriptedBoard(model_reply, stats_reply)
    client = NetworkProtocol("127.0.0.1", board.port, timeout=5)
    client.initialize_client()
    with pytest.raises(ProtocolError, match=message) as error:
        run_session(client, Wrapper(), digits, b"model", warmup=0, max_samples=5, progress=False)
    client.disconnect()
    where = "while uploading the model" if b"html" in model_reply else "during the warm-up (STATS)"
    assert where in str(error.value)


# -- the local board, its lifetime and its lock ---------------------------------------------------------------
def client_command(wrapper_path, digits, tmp_path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edge_ai_lib.scenarios.inference_client",
            "edge_ai_lib.modelwrappers.classification.pytorch_digits.PyTorchDigitsCNN",
            "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler", PROTOCOL, extra[0], "edge_ai_lib.datasets.digits.DigitsDataset",
            str(tmp_path / "report"), "local", "--model-path", str(wrapper_path),
            "--compiled-model-path", str(tmp_path / "m.onnx"), "--save-model-path", str(tmp_path / "board.onnx"),
            "--dataset-root", str(digits.root), "--board", "edge_ai_lib.boards.local.LocalBoard", "--num-threads", "1", *extra[1:]]


def client_env(tmp_path, **extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "EDGE_AI_LOCK_DIR": str(tmp_path / "locks"), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


@pytest.mark.slow
def test_a_board_that_dies_is_named_with_the_sample_reached(trained_torch_digits, digits, tmp_path):
    wrapper, _ = trained_torch_digits
    result = subprocess.run(client_command(wrapper.model_path, digits, tmp_path, "boardfaults.DyingONNXRuntime",
                                           "--warmup", "2", "--max-samples", "100"),
                            capture_output=True, text=True, timeout=300,
                            env=client_env(tmp_path, EDGE_AI_DIE_AT="41"))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()
    error = next(line for line in last if line.startswith("error:"))
    # inference 41 = the cold call, 2 of warm-up, then measured sample 38
    assert "the server of board 'local' died (exit status 9) at INFER of sample 38 of 100 (after 37 measured)" \
        in error
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "report" / "local.json").exists()


@pytest.mark.slow
def test_a_terminated_client_leaves_no_result_and_no_server(trained_torch_digits, digits, tmp_path):
    wrapper, _ = trained_torch_digits
    client = subprocess.Popen(client_command(wrapper.model_path, digits, tmp_path, "boardfaults.SlowONNXRuntime",
                                             "--warmup", "0", "--max-samples", "300"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=client_env(tmp_path, EDGE_AI_SLOW_S="0.05"))
    server_log = tmp_path / "report" / "local-server.log"
    deadline = time.monotonic() + 120
    while not (server_log.is_file() and "connected" in server_log.read_text()):
        assert time.monotonic() < deadline and client.poll() is None, client.communicate()
        time.sleep(0.1)
    servers = psutil.Process(client.pid).children()
    assert len(servers) == 1
    client.send_signal(signal.SIGTERM)
    _, stderr = client.communicate(timeout=30)
    assert client.returncode == 143, stderr
    assert "Traceback" not in stderr
    psutil.wait_procs(servers, timeout=15)
    assert not any(s.is_running() and s.status() != psutil.STATUS_ZOMBIE for s in servers), "the server outlived its client"
    assert not list((tmp_path / "report").glob("local.json*"))
    assert not list(tmp_path.glob("board*.onnx"))  # the server removed its session's model


STARTER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from edge_ai_lib.boards.local import LocalBoard
    board = LocalBoard(log_path=Path(sys.argv[1]) / "server.log")
    board.start({{"protocol": {{"class": "{protocol}"}},
                 "runtime": {{"class": "{runtime}", "args": {{"save_model_path": sys.argv[1] + "/m.onnx"}}}}}})
    print(board.process.pid, flush=True)
    time.sleep(120)
""").format(protocol=PROTOCOL, runtime=ORT)


def test_a_server_dies_with_the_client_that_started_it(tmp_path):
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    server_pid = int(starter.stdout.readline())
    assert psutil.pid_exists(server_pid)
    starter.kill()  # SIGKILL: no handler, no finally
    starter.wait()
    try:
        psutil.Process(server_pid).wait(timeout=15)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        os.kill(server_pid, signal.SIGKILL)
        pytest.fail("the server outlived the process that started it")
    assert "the process that started this server has exited: stopping" in (tmp_path / "server.log").read_text()


HOLDER = textwrap.dedent("""
    import sys, time
    from edge_ai_lib.boards.lock import BoardLock
    with BoardLock("local", directory=sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def hold_board(tmp_path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "locks"), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_held_board_fails_after_the_timeout_naming_the_holder(tmp_path):
    holder = hold_board(tmp_path, 30)
    try:
        start = time.monotonic()
        with pytest.raises(BoardError) as error:
            BoardLock("local", timeout=1, directory=tmp_path / "locks", on_wait=lambda _: None).acquire()
        assert 0.9 < time.monotonic() - start < 5
        assert f"board 'local' is still in use by pid {holder.pid}" in str(error.value)
        assert "raise the board lock timeout" in str(error.value)
    finally:
        holder.kill()
        holder.wait()
    # a holder killed with SIGKILL leaves no stale lock
    with BoardLock("local", timeout=0, directory=tmp_path / "locks"):
        pass


def test_a_second_benchmark_waits_for_the_board(tmp_path):
    holder = hold_board(tmp_path, 1.5)
    waits = []
    start = time.monotonic()
    with BoardLock("local", timeout=30, directory=tmp_path / "locks", on_wait=waits.append):
        waited = time.monotonic() - start
    holder.wait()
    assert 1.0 < waited < 10
    assert len(waits) == 1 and f"is in use by pid {holder.pid}" in waits[0]


@pytest.mark.slow
def test_the_client_refuses_a_board_held_by_another_workflow(trained_torch_digits, digits, tmp_path):
    wrapper, _ = trained_torch_digits
    holder = hold_board(tmp_path, 60)
    try:
        result = subprocess.run(client_command(wrapper.model_path, digits, tmp_path, ORT, "--max-samples", "10",
                                               "--lock-timeout", "1"),
                                capture_output=True, text=True, timeout=300, env=client_env(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert f"error: board 'local' is still in use by pid {holder.pid}" in result.stderr
    assert not (tmp_path / "report" / "local.json").exists()


def test_each_session_stores_its_model_privately_and_removes_it(tmp_path, model):
    """Two servers sharing --save-model-path: their sessions never touch each other's file."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ServerProcess(tmp_path / "a")
    second = ServerProcess(tmp_path / "b", "--save-model-path", str(tmp_path / "a" / "received.onnx"))
    try:
        with connect(first.port) as one, connect(second.port) as two:
            for sock in (one, two):
                sock.sendall(frame(MessageType.MODEL, model))
                assert read_frame(sock)[0] == MessageType.OK
            stored = sorted(p.name.split("-")[1] for p in (tmp_path / "a").glob("received*.onnx"))
            assert stored == sorted([str(first.process.pid), str(second.process.pid)])
        deadline = time.monotonic() + 5
        while list((tmp_path / "a").glob("received*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not list((tmp_path / "a").glob("received*"))
    finally:
        first.close()
        second.close()
