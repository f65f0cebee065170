"""`make fuzz`: a structure-aware fuzzer of the inference server, run the way a board runs it.

    python bench/fuzz.py --frames 100000 [--seed N] [--json OUT] [--server-root DIR]

The real server is started as a subprocess (``python -m edge_ai_lib.scenarios.inference_server`` with
NetworkProtocol and ONNXRuntime, ``--timeout 1 --max-payload 1048576``) and fed frames over 127.0.0.1
only. The frames are valid frames of every message type, most of them sent as is (so that the request
handler, not only the framing code, is exercised) and some mutated: magic, version, type, flags,
length, both CRCs, truncation, malformed tensor lists, corrupt models, requests out of order. They
travel in one write, in random pieces, one byte at a time or pipelined, and the connection is closed
cleanly (FIN) or abruptly (RST) at random points: before a reply is read, in the middle of a frame,
between the two OKs of PROCESS, before OUTPUT's reply.

Every frame is classified by what the server actually answered, and the run counts server deaths
(restarting the server each time), hangs (a good client that cannot finish a session in ~10 s), and
the growth of the server's resident memory. It prints a table and exits non-zero on any death or hang,
on a share of frames reaching the request handler below 30 %, or on a memory growth of twice the
largest payload sent or more. ``run_fuzz`` does the same for a caller (tests/test_fuzz.py) and
returns the figures as a dict.

The fuzzer deliberately re-implements the wire format (docs/protocol.md) instead of importing
edge_ai_lib's codec: it must be able to write what that codec refuses to (ranks over 8, counts of
tensors over any limit), and it must keep working while the server side is being rewritten.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:  # CRC-32C trailers (flag bit 1) are fuzzed when this side can compute them
    from crc32c import crc32c as CRC32C
except ImportError:
    CRC32C = None

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # the only address this program ever talks to

# -- the wire format (docs/protocol.md), written out here on purpose -----------------------------------
MAGIC = b"EAIT"
HEAD = struct.Struct(">4sBBHQI")  # magic, version, type, flags, payload length, payload CRC
HEADER_SIZE = HEAD.size + 4
OK, ERROR, DATA, MODEL, PROCESS, OUTPUT, STATS, INFER = range(8)
UNKNOWN = -1  # stands for "any type the protocol does not define" when generating
TYPE_NAMES = ("OK", "ERROR", "DATA", "MODEL", "PROCESS", "OUTPUT", "STATS", "INFER")
LABELS = TYPE_NAMES + ("UNKNOWN",)

# -- what the server may answer a frame with -----------------------------------------------------------
OUTCOMES = ("handler_ok", "handler_error", "header_error", "payload_crc", "unknown_type", "incomplete", "idle",
            "busy", "no_answer")
HANDLER_OUTCOMES = ("handler_ok", "handler_error")
CLOSING_OUTCOMES = ("header_error", "incomplete", "idle", "busy")  # the server closes after these
HEADER_ERROR_TEXTS = ("bad magic", "protocol version", "header CRC", "exceeds the limit")

# -- the server under test ------------------------------------------------------------------------------
SERVER_MODULE = "edge_ai_lib.scenarios.inference_server"
SERVER_PROTOCOL = "edge_ai_lib.runtimeprotocols.network.NetworkProtocol"
SERVER_RUNTIME = "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime"
SERVER_TIMEOUT = 1.0
MAX_PAYLOAD = 4 << 20  # models of a few MiB are the common case; the RSS bound is 2x this
FEATURES, CLASSES = 4, 3

# -- pass criteria ----------------------------------------------------------------------------------------
MIN_HANDLER_SHARE = 0.30
RSS_GROWTH_FACTOR = 2.0
# Reported (not failed on): a peak this many times the largest payload means a per-element cost (one object
# per tensor, say) rather than buffers proportional to the bytes received.
PEAK_FINDING_FACTOR = 16


# ======================================================================================================
# Encoding
# ======================================================================================================
def header(message_type: int, length: int, payload_crc: int, *, magic: bytes = MAGIC, version: int = 1,
           flags: int = 0, header_crc: int | None = None) -> bytes:
    """A 24-byte header with any field chosen freely; the header CRC is right unless one is given.

    Every field is a parameter so that a mutation changes exactly one thing and the server's answer
    can be attributed to it (a bad version with a right header CRC must be refused for the version).
    """
    head = HEAD.pack(magic, version, message_type, flags, length, payload_crc)
    return head + struct.pack(">I", zlib.crc32(head) if header_crc is None else header_crc)


def frame(message_type: int, payload: bytes = b"", **fields: Any) -> bytes:
    """A whole frame whose length and CRCs match its payload (fields as in `header`)."""
    return header(message_type, len(payload), zlib.crc32(payload) if payload else 0, **fields) + payload


def tensor_entry(code: int, shape: tuple[int, ...], data: bytes) -> bytes:
    """One entry of a tensor list: dtype code, rank, dimensions, raw data; nothing is checked (on purpose)."""
    return struct.pack(">BB", code, len(shape)) + struct.pack(f">{len(shape)}Q", *shape) + data


def tensor_list(entries: list[bytes], count: int | None = None) -> bytes:
    """A tensor list; `count` may lie about the number of entries."""
    return struct.pack(">I", len(entries) if count is None else count) + b"".join(entries)


def float_tensor(array: np.ndarray) -> bytes:
    """A float32 tensor entry in the wire's byte order (little-endian data)."""
    array = np.ascontiguousarray(array, dtype="<f4")
    return tensor_entry(0, array.shape, array.tobytes())


def decode_float_tensors(payload: bytes) -> list[np.ndarray]:
    """Decode the float32 tensor list a good OUTPUT answer carries (used only to check the good client's result)."""
    (count,) = struct.unpack_from(">I", payload, 0)
    offset, tensors = 4, []
    for _ in range(count):
        code, rank = struct.unpack_from(">BB", payload, offset)
        shape = struct.unpack_from(f">{rank}Q", payload, offset + 2)
        offset += 2 + 8 * rank
        if code != 0:
            raise ValueError(f"OUTPUT carried dtype code {code}, expected 0 (float32)")
        size = 4 * int(np.prod(shape)) if rank else 4
        tensors.append(np.frombuffer(payload, "<f4", size // 4, offset).reshape(shape))
        offset += size
    if offset != len(payload):
        raise ValueError(f"{len(payload) - offset} stray bytes after OUTPUT's tensor list")
    return tensors


def write_model(path: Path, features: int = FEATURES, classes: int = CLASSES) -> np.ndarray:
    """Write y = x @ W + 1 with a dynamic batch as ONNX; returns W.

    A model this small loads in milliseconds, so that a valid MODEL can open most fuzzed sessions
    and the requests behind it reach the handler's success paths, not only its refusals.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = (np.arange(features * classes, dtype=np.float32).reshape(features, classes) + 1) / 8
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "fuzz",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.ones(classes, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return weights


# ======================================================================================================
# The server process
# ======================================================================================================
class ServerProcess:
    """The inference server as a subprocess, restartable, with its log kept per incarnation.

    A subprocess (not a thread) is the point: a death must be visible as an exit status and must not
    take the fuzzer down, and the memory measured must be the server's alone.

    Parameters
    ----------
    workdir : Path
        Where the logs and the received model go.
    root : Path
        The checkout whose edge_ai_lib is served (its directory goes first on PYTHONPATH), so that a
        revision other than the working tree can be fuzzed.
    timeout, max_payload : float, int
        The server's --timeout and --max-payload.
    """

    def __init__(self, workdir: Path, root: Path, timeout: float = SERVER_TIMEOUT, max_payload: int = MAX_PAYLOAD):
        self.workdir = workdir
        self.root = Path(root).resolve()
        self.timeout = timeout
        self.max_payload = max_payload
        self.incarnation = 0
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path = workdir / "server-0.log"

    def command(self) -> list[str]:
        """The board's command line, fixed: the fuzzer tests the server as deployed, not a variant of it."""
        return [sys.executable, "-m", SERVER_MODULE, SERVER_PROTOCOL, SERVER_RUNTIME, "--host", HOST, "--port", "0",
                "--save-model-path", str(self.workdir / "model.onnx"), "--timeout", f"{self.timeout:g}",
                "--max-payload", str(self.max_payload), "--resource-interval", "0"]

    def start(self, within: float = 60.0) -> None:
        """Start a fresh server and wait (bounded) for its `listening on HOST:PORT` line."""
        self.incarnation += 1
        self.log_path = self.workdir / f"server-{self.incarnation}.log"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(self.root), *filter(None, [os.environ.get("PYTHONPATH")])])}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.root, env=env)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            match = re.search(rb"listening on (\S+):(\d+)", self.log_path.read_bytes())
            if match:
                self.port = int(match.group(2))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the server did not start (exit status {self.proc.returncode}); its log:\n"
                           + "\n".join(self.tail(30)))

    def alive(self) -> bool:
        """Whether the server process is still running (not whether it answers: that is the hang check)."""
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, within: float) -> bool:
        """Whether the server exits within `within` s (a refused connection may precede the exit by a moment)."""
        try:
            self.proc.wait(timeout=within)
            return True
        except subprocess.TimeoutExpired:
            return False

    def rss(self) -> int:
        """The server's resident memory in bytes (0 when it is gone)."""
        import psutil

        try:
            return psutil.Process(self.proc.pid).memory_info().rss
        except (psutil.Error, AttributeError):
            return 0

    def tail(self, lines: int = 12) -> list[str]:
        """The last lines of this incarnation's log: where a death's traceback or reason is."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def exit_description(self) -> dict[str, Any]:
        """Exit status (and signal name for a crash) and the log tail of a dead server, for the report."""
        status = self.proc.returncode
        description = {"exit_status": status, "log_tail": self.tail(12), "incarnation": self.incarnation}
        if status is not None and status < 0:
            try:
                description["signal"] = signal.Signals(-status).name
            except ValueError:
                description["signal"] = str(-status)
        return description

    def stop(self) -> None:
        """SIGTERM (the server stops within its 0.5 s poll), then SIGKILL if it does not."""
        if not self.alive():
            return
        self.proc.terminate()
        if not self.wait_exit(10):
            self.proc.kill()
            self.wait_exit(10)


class RssWatch:
    """Samples the server's resident memory every 50 ms on a thread, for its peak.

    Before/after samples miss transient blow-ups (a frame that makes the server allocate far more than
    its own size and free it again); the peak shows them.
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.pid: int | None = None
        self.peak = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="rss-watch", daemon=True)
        self.thread.start()

    def follow(self, pid: int) -> None:
        """Watch another process (a restarted server); its peak starts afresh."""
        self.pid, self.peak = pid, 0

    def _loop(self) -> None:
        import psutil

        while not self.stop_event.wait(self.interval):
            pid = self.pid
            if pid is None:
                continue
            try:
                rss = psutil.Process(pid).memory_info().rss
            except psutil.Error:
                continue
            if pid == self.pid:
                self.peak = max(self.peak, rss)

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=2)


# ======================================================================================================
# A raw client connection
# ======================================================================================================
class Stall(Exception):
    """The server sent nothing within the deadline while the connection was open."""


class BadReply(Exception):
    """The server sent bytes that are not a valid frame (a server bug: its frames come from its own encoder)."""


class Wire:
    """One raw TCP connection to the server: writes in any piece size, reads and checks reply frames.

    Parameters
    ----------
    port : int
        The server's port on 127.0.0.1.
    connect_timeout : float
        Bound on the connection attempt.
    """

    def __init__(self, port: int, connect_timeout: float = 3.0):
        self.sock = socket.create_connection((HOST, port), timeout=connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.reset = False  # the server reset the connection (ECONNRESET on a read)
        self.transcript: list[str] = []  # every reply read, shortened: the evidence of an anomaly

    def write(self, data: bytes, chunking: str = "whole", rng: random.Random | None = None,
              byte_delay: float = 0.0, timeout: float = 5.0) -> bool:
        """Send `data` whole, in random pieces or one byte per write; False when the server has gone.

        One-byte writes with TCP_NODELAY put each byte in its own segment, which is what a slow or
        byte-by-byte sender looks like to the server's receive loop.
        """
        self.sock.settimeout(timeout)
        try:
            if chunking == "whole" or len(data) <= 1:
                self.sock.sendall(data)
            elif chunking == "bytes":
                for index in range(len(data)):
                    self.sock.sendall(data[index:index + 1])
                    if byte_delay:
                        time.sleep(byte_delay)
            else:
                position = 0
                while position < len(data):
                    size = rng.choice((1, 2, 3, 7, 23, 24, 25, 100, 1000, 4096))
                    self.sock.sendall(data[position:position + size])
                    position += size
        except TimeoutError:
            raise Stall(f"the server read nothing for {timeout:g} s while we were sending") from None
        except OSError:
            return False
        return True

    def _fill(self, size: int, deadline: float) -> bool:
        """Buffer at least `size` bytes; False at end of stream (or reset), Stall at the deadline."""
        while len(self.buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Stall("no reply before the deadline")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(max(65536, size - len(self.buffer)))
            except TimeoutError:
                raise Stall("no reply before the deadline") from None
            except OSError:
                self.reset, chunk = True, b""
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read_reply(self, deadline: float) -> tuple[int, bytes] | None:
        """The next reply frame, checked like a client checks it; None when the server closed first."""
        if not self._fill(HEADER_SIZE, deadline):
            return None
        magic, version, message_type, _flags, length, payload_crc = HEAD.unpack_from(self.buffer)
        (header_crc,) = struct.unpack_from(">I", self.buffer, HEAD.size)
        if magic != MAGIC or version != 1 or zlib.crc32(self.buffer[:HEAD.size]) != header_crc or length > 1 << 30:
            raise BadReply(f"invalid reply header {bytes(self.buffer[:HEADER_SIZE]).hex()}")
        if not self._fill(HEADER_SIZE + length, deadline):
            return None
        payload = bytes(self.buffer[HEADER_SIZE:HEADER_SIZE + length])
        del self.buffer[:HEADER_SIZE + length]
        if (zlib.crc32(payload) if payload else 0) != payload_crc:
            raise BadReply(f"reply of type {message_type} with a wrong payload CRC")
        name = TYPE_NAMES[message_type] if message_type < len(TYPE_NAMES) else str(message_type)
        self.transcript.append(f"{name} {payload[:60]!r}" if message_type == ERROR else f"{name} {len(payload)} B")
        return message_type, payload

    def close_fin(self) -> None:
        """Close cleanly: our FIN goes out first (shutdown), then the socket is released."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.sock.close()

    def close_rst(self) -> None:
        """Close abruptly: SO_LINGER on with a zero timeout makes close() send RST and drop unsent data."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()

    def drain_until_eof(self, deadline: float) -> tuple[list[tuple[int, bytes]], bool]:
        """After our FIN: read replies until the server closes; returns them and whether it closed in time."""
        replies = []
        try:
            while len(replies) < 10_000:
                reply = self.read_reply(deadline)
                if reply is None:
                    return replies, True
                replies.append(reply)
        except (Stall, BadReply):
            pass
        return replies, False


def classify(message_type: int, payload: bytes) -> str:
    """The outcome of a frame from the server's first answer to it.

    The texts are the server's own ERROR reasons: framing problems are reported before the request
    handler runs, so anything else in an ERROR (or an OK) means the frame reached the handler.
    """
    if message_type == OK:
        return "handler_ok"
    text = payload.decode(errors="replace")
    if text.startswith("busy"):
        return "busy"
    if any(marker in text for marker in HEADER_ERROR_TEXTS):
        return "header_error"
    if "payload CRC mismatch" in text:
        return "payload_crc"
    if "unknown message type" in text:
        return "unknown_type"
    if "frame incomplete" in text:
        return "incomplete"
    if "no request for" in text:
        return "idle"
    return "handler_error"


# ======================================================================================================
# The generator
# ======================================================================================================
@dataclass(slots=True)
class Frame:
    """One frame to send, and what it is for the report.

    `terminal` is "fatal" for frames after which the server must close (header problems), "desync"
    for frames after which the stream is out of step (a length shorter than what follows): either
    one is always the last frame of its connection, so that every answer can be attributed.
    """

    data: bytes
    type_byte: int
    mutation: str
    payload_size: int
    terminal: str = ""

    @property
    def label(self) -> str:
        """The row of the report: the type byte on the wire (what the server sees), not what was intended."""
        return LABELS[self.type_byte] if self.type_byte < len(TYPE_NAMES) else "UNKNOWN"

    def describe(self) -> str:
        """Type, mutation and size, plus the exact bytes of small frames, so that a finding can be replayed."""
        text = f"{self.label}/{self.mutation}({self.payload_size} B)"
        return text if len(self.data) > 64 else f"{text}[{self.data.hex()}]"


@dataclass
class Plan:
    """One connection: its frames, how they are written, and when and how the connection is closed.

    `ends` are the end indices of the write groups (a group is written at once, then its answers
    are read); `close_point` is "end" or one of the early closes, at frame `close_index`.
    """

    kind: str
    frames: list[Frame]
    ends: list[int] = field(default_factory=list)
    chunking: str = "whole"
    byte_delay: float = 0.0
    close_point: str = "end"
    close_index: int = -1
    close_kind: str = "fin"
    cut: int = 0

    def describe(self) -> str:
        """Everything needed to replay the connection by hand: frames, groups, piece sizes, close."""
        frames = ", ".join(f.describe() for f in self.frames[:self.last + 1])
        close = f"{self.close_kind.upper()} at end" if self.close_point == "end" else \
            f"{self.close_kind.upper()} {self.close_point} of frame {self.close_index}" + \
            (f" after {self.cut} B" if self.close_point == "mid_frame" else "")
        return f"{self.kind}: [{frames}] groups {self.ends} {self.chunking}; {close}"

    @property
    def last(self) -> int:
        """Index of the last frame that is (at least partly) sent."""
        return self.close_index if self.close_point != "end" else len(self.frames) - 1


class Generator:
    """Makes connection plans, biased towards valid frames in a sensible order.

    A purely random byte stream is refused by the header checks and never reaches the request
    handler, which is where the interesting state lives (model loaded, inputs ready, outputs ready);
    so most connections are sessions that follow the protocol with a few mutations and requests out
    of order, and the rest are chaotic or single-frame.

    Parameters
    ----------
    rng : random.Random
        The only source of randomness (a seed reproduces a run's plans).
    model, other_model : bytes
        A valid ONNX model of the expected input size, and one of another input size.
    max_payload : int
        The server's --max-payload (lengths just over it are generated).
    """

    ANY = (OK, ERROR, DATA, MODEL, PROCESS, OUTPUT, STATS, INFER, UNKNOWN)
    ANY_WEIGHTS = (1, 1, 4, 1, 4, 3, 2, 3, 1)

    def __init__(self, rng: random.Random, model: bytes, other_model: bytes, max_payload: int = MAX_PAYLOAD):
        self.rng = rng
        self.model = model
        self.other_model = other_model
        self.max_payload = max_payload
        values = (np.linspace(-1, 1, 64, dtype=np.float32))
        self.data_payloads = [tensor_list([float_tensor(np.resize(values, (batch, FEATURES)) * scale)])
                              for batch in (1, 2, 3, 4, 8) for scale in (1.0, 3.5)]
        # Expensive frames (1 MiB payloads, huge tensor counts) are rationed so that a run's time is
        # predictable; the warm-up sends the largest of each kind once anyway (`big_session`).
        self.budget = Counter({"big": 12, "many_tiny_big": 2})
        self.resync = self._resync_table()

    # -- single frames -------------------------------------------------------------------------------
    def valid(self, message_type: int) -> Frame:
        """A valid frame of this type (DATA: a batch the model accepts; MODEL: the good model)."""
        if message_type == UNKNOWN:
            return self.unknown_type()
        payload = b""
        if message_type in (DATA, INFER):
            payload = self.rng.choice(self.data_payloads)
        elif message_type == MODEL:
            payload = self.model
        return Frame(frame(message_type, payload), message_type, "valid", len(payload))

    def unknown_type(self) -> Frame:
        """A well-formed frame of a type the protocol does not define (the server must stay in step)."""
        message_type = self.rng.randrange(8, 256)
        payload = self.rng.randbytes(self.rng.choice((0, 1, 16, 300)))
        return Frame(frame(message_type, payload), message_type, "unknown_type", len(payload))

    def _resync_table(self) -> list[tuple[str, tuple[int, ...], int, Callable[[int], Frame]]]:
        """(name, types it applies to, weight, builder) of the mutations after which the stream stays in step."""
        any_type = (OK, ERROR, DATA, MODEL, PROCESS, OUTPUT, STATS, INFER)
        return [
            ("flags", any_type, 3, self.m_flags),
            ("crc_trailer", any_type, 3, self.m_crc_trailer),
            ("payload_crc", any_type, 4, self.m_payload_crc),
            ("unknown_type", any_type, 3, lambda t: self.unknown_type()),
            ("client_sends_ok_or_error", any_type, 1, self.m_client_type),
            ("payload_on_empty_request", (PROCESS, OUTPUT, STATS), 3, self.m_payload_on_empty),
            ("empty_payload", (DATA, MODEL, INFER), 2, lambda t: Frame(frame(t), t, "empty_payload", 0)),
            ("one_byte_payload", (DATA, MODEL, INFER), 2, self.m_one_byte),
            ("tensors", (DATA,), 30, self.m_tensors),
            ("model", (MODEL,), 12, self.m_model),
            ("big", (DATA, MODEL), 1, self.m_big),
        ]

    def mutated(self, message_type: int) -> Frame:
        """A frame of this type with one in-step mutation (valid CRCs unless the CRC is the mutation)."""
        if message_type == UNKNOWN:
            return self.unknown_type()
        choices = [(builder, weight) for _, types, weight, builder in self.resync if message_type in types]
        builder = self.rng.choices([c[0] for c in choices], [c[1] for c in choices])[0]
        return builder(message_type)

    def base_payload(self, message_type: int) -> bytes:
        """The payload a mutation starts from: a valid one for DATA and MODEL, a few random bytes otherwise."""
        if message_type == DATA:
            return self.rng.choice(self.data_payloads)
        if message_type == MODEL:
            return self.model
        return self.rng.randbytes(self.rng.choice((0, 0, 5, 40)))

    def m_flags(self, t: int) -> Frame:
        """Flag bits the protocol does not define (2-15): a receiver ignores them."""
        payload = self.base_payload(t) if t in (DATA, MODEL) else b""
        return Frame(frame(t, payload, flags=self.rng.randrange(1, 1 << 14) << 2), t, "flags", len(payload))

    def m_crc_trailer(self, t: int) -> Frame:
        """The checksum after the payload (flag bit 0; CRC-32C with bit 1 when this side can compute it),
        right or wrong: the frame is served as the plain one, or refused for its CRC, in step either way."""
        payload = self.base_payload(t) if t in (DATA, MODEL) else b""
        castagnoli = CRC32C is not None and self.rng.random() < 0.5
        crc = CRC32C(payload) if castagnoli else zlib.crc32(payload)
        if self.rng.random() < 0.25:
            crc ^= self.rng.randrange(1, 1 << 32)
        data = header(t, len(payload), 0, flags=3 if castagnoli else 1) + payload + struct.pack(">I", crc)
        return Frame(data, t, "crc_trailer", len(payload))

    def m_payload_crc(self, t: int) -> Frame:
        payload = self.base_payload(t)
        crc = (zlib.crc32(payload) if payload else 0) ^ self.rng.randrange(1, 1 << 32)
        return Frame(header(t, len(payload), crc) + payload, t, "payload_crc", len(payload))

    def m_client_type(self, t: int) -> Frame:
        kind = self.rng.choice((OK, ERROR))
        payload = self.rng.choice((b"", b"hello", "a reason \u2603".encode()))
        return Frame(frame(kind, payload), kind, "client_sends_ok_or_error", len(payload))

    def m_payload_on_empty(self, t: int) -> Frame:
        payload = self.rng.randbytes(self.rng.randrange(1, 200))
        return Frame(frame(t, payload), t, "payload_on_empty_request", len(payload))

    def m_one_byte(self, t: int) -> Frame:
        payload = self.rng.randbytes(1)
        return Frame(frame(t, payload), t, "one_byte_payload", 1)

    def m_tensors(self, t: int = DATA) -> Frame:
        """A DATA frame whose tensor list is malformed in one way (or odd but valid), with right CRCs."""
        rng = self.rng
        good = np.ones((2, FEATURES), np.float32)
        name = rng.choice(("count_huge", "count_zero", "count_more", "count_less", "rank_over", "dtype_unknown",
                           "dims_overflow", "size_short", "stray_bytes", "many_tiny", "wrong_shape", "batch0",
                           "other_dtype", "rank8", "nan", "truncated_entry", "random_bytes", "two_tensors"))
        if name == "count_huge":
            payload = tensor_list([float_tensor(good)], count=rng.choice((0xFFFFFFFF, 1 << 31, 1 << 20, 65536)))
        elif name == "count_zero":
            payload = tensor_list([])
        elif name == "count_more":
            payload = tensor_list([float_tensor(good)], count=2)
        elif name == "count_less":
            payload = tensor_list([float_tensor(good), float_tensor(good)], count=1)
        elif name == "rank_over":
            rank = rng.choice((9, 16, 255))
            payload = tensor_list([tensor_entry(0, (1,) * rank, b"\0" * 4)])
        elif name == "dtype_unknown":
            payload = tensor_list([tensor_entry(rng.randrange(6, 256), (2, FEATURES), b"\0" * 32)])
        elif name == "dims_overflow":
            shape = rng.choice(((1 << 32, 1 << 32), (1 << 63, 2), ((1 << 64) - 1, (1 << 64) - 1), (0, (1 << 64) - 1),
                                (1 << 62, 4), ((1 << 64) - 1,), (2, 1 << 61, 2)))
            payload = tensor_list([tensor_entry(0, shape, b"\0" * rng.choice((0, 4, 32)))])
        elif name == "size_short":
            payload = tensor_list([tensor_entry(0, (2, FEATURES), b"\0" * rng.randrange(0, 32))])
        elif name == "stray_bytes":
            payload = tensor_list([float_tensor(good)]) + rng.randbytes(rng.randrange(1, 9))
        elif name == "many_tiny":
            count = rng.choice((2, 300, 1000, 5000))
            payload = tensor_list([tensor_entry(3, (), b"\x07")] * count)
        elif name == "wrong_shape":
            payload = tensor_list([float_tensor(np.ones(rng.choice(((1, 5), (4,), (1, 1, FEATURES))), np.float32))])
        elif name == "batch0":
            payload = tensor_list([tensor_entry(0, (0, FEATURES), b"")])
        elif name == "other_dtype":
            code, dtype = rng.choice(((1, "<f2"), (2, "i1"), (3, "u1"), (4, "<i4"), (5, "<i8")))
            payload = tensor_list([tensor_entry(code, (2, FEATURES), np.ones((2, FEATURES), dtype).tobytes())])
        elif name == "rank8":
            payload = tensor_list([tensor_entry(0, (1,) * 7 + (FEATURES,), b"\0" * 4 * FEATURES)])
        elif name == "nan":
            payload = tensor_list([float_tensor(np.array([[np.nan, np.inf, -np.inf, 1e38]] * 2, np.float32))])
        elif name == "truncated_entry":
            whole = tensor_list([float_tensor(good)])
            payload = whole[:rng.randrange(1, len(whole))]
        elif name == "two_tensors":
            payload = tensor_list([float_tensor(good), float_tensor(good)])
        else:
            payload = rng.randbytes(rng.randrange(1, 64))
        return Frame(frame(DATA, payload), DATA, f"tensors:{name}", len(payload))

    def m_model(self, t: int = MODEL) -> Frame:
        """A MODEL frame whose model file is corrupt in one way (or valid but of another input size)."""
        rng = self.rng
        name = rng.choice(("bitflip", "truncated", "garbage", "appended", "other_model", "zeros"))
        model = bytearray(self.model)
        if name == "bitflip":
            for _ in range(rng.randrange(1, 5)):
                model[rng.randrange(len(model))] ^= 1 << rng.randrange(8)
        elif name == "truncated":
            model = model[:rng.randrange(1, len(model))]
        elif name == "garbage":
            model = bytearray(rng.randbytes(rng.randrange(1, 2048)))
        elif name == "appended":
            model += rng.randbytes(rng.randrange(1, 64))
        elif name == "other_model":
            model = bytearray(self.other_model)
        else:
            model = bytearray(rng.randrange(1, 512))
        payload = bytes(model)
        return Frame(frame(MODEL, payload), MODEL, f"model:{name}", len(payload))

    def m_big(self, t: int) -> Frame:
        """Payloads at or near the limit (rationed): a valid large batch, a large garbage model, a bad CRC."""
        if self.budget["big"] <= 0:
            return self.m_tensors() if t == DATA else self.m_model()
        self.budget["big"] -= 1
        return self.big_frame(t, self.rng.choice(("valid_limit", "payload_crc_limit")))

    def big_frame(self, t: int, name: str) -> Frame:
        if t == DATA:
            batch = (self.max_payload - 4 - 2 - 16) // (4 * FEATURES)  # the largest valid batch that fits
            payload = tensor_list([float_tensor(np.full((batch, FEATURES), 0.5, np.float32))])
        else:
            payload = bytes(self.model) + b"\0" * (self.max_payload - len(self.model))  # trailing zeros: corrupt
        if name == "payload_crc_limit":
            return Frame(header(t, len(payload), zlib.crc32(payload) ^ 1) + payload, t, "big:payload_crc",
                         len(payload))
        return Frame(frame(t, payload), t, f"big:{'batch' if t == DATA else 'model'}", len(payload))

    def many_tiny_big(self) -> Frame:
        """As many rank-0 uint8 tensors as the payload limit allows (3 bytes each): the cost is per tensor."""
        count = (self.max_payload - 4) // 3
        payload = tensor_list([tensor_entry(3, (), b"\x07")] * count)
        return Frame(frame(DATA, payload), DATA, "tensors:many_tiny_at_limit", len(payload))

    def terminal(self, message_type: int) -> Frame:
        """A frame after which the server must close (header problems) or is out of step (short length)."""
        rng = self.rng
        t = message_type if message_type != UNKNOWN else rng.randrange(8, 256)
        payload = self.base_payload(t) if t in (DATA, MODEL) else rng.randbytes(rng.choice((0, 3, 50)))
        crc = zlib.crc32(payload) if payload else 0
        name = rng.choice(("bad_magic", "bad_version", "bad_header_crc", "length_over", "length_huge", "garbage",
                           "length_short", "length_short"))
        terminal = "fatal"
        if name == "bad_magic":
            magic = rng.choice((b"HTTP", b"EAIS", b"\0\0\0\0", b"TIAE", rng.randbytes(4)))
            data = header(t, len(payload), crc, magic=magic if magic != MAGIC else b"NOPE") + payload
        elif name == "bad_version":
            data = header(t, len(payload), crc, version=rng.choice((0, 2, 255))) + payload
        elif name == "bad_header_crc":
            good = header(t, len(payload), crc)
            bad = struct.unpack(">I", good[20:])[0] ^ (1 << rng.randrange(32))
            data = good[:20] + struct.pack(">I", bad) + payload
        elif name == "length_over":
            payload = rng.randbytes(rng.choice((0, 16, 64)))
            data = header(t, self.max_payload + 1, crc) + payload
        elif name == "length_huge":
            length = rng.choice((1 << 32, 1 << 40, 1 << 63, (1 << 64) - 1,
                                 rng.randrange(self.max_payload + 2, 1 << 64)))
            payload = rng.randbytes(rng.choice((0, 16)))
            data = header(t, length, 0) + payload
        elif name == "garbage":
            payload = rng.choice((b"GET / HTTP/1.1\r\nHost: board\r\n\r\n", b"\x16\x03\x01\x02\x00\x01" + b"\0" * 40,
                                  rng.randbytes(rng.randrange(24, 200))))
            data = payload
            t = payload[5] if len(payload) > 5 else UNKNOWN
        else:  # length_short: the header claims fewer bytes than follow; the rest is read as the next header
            if len(payload) < 2:
                payload = rng.randbytes(rng.randrange(2, 80))
            claimed = rng.randrange(0, len(payload))
            data = header(t, claimed, zlib.crc32(payload[:claimed]) if claimed else 0) + payload
            terminal = "desync"
        return Frame(data, t if 0 <= t < 256 else 255, name, len(payload), terminal)

    # -- connections -----------------------------------------------------------------------------------
    def _next_in_session(self, previous: int) -> int:
        if previous == OUTPUT:
            return self.rng.choice((DATA, DATA, STATS))
        if previous in (MODEL, INFER):
            return self.rng.choice((DATA, INFER, INFER, STATS))
        return {DATA: PROCESS, PROCESS: OUTPUT, STATS: DATA}.get(previous, DATA)

    def _pick_any(self) -> int:
        return self.rng.choices(self.ANY, self.ANY_WEIGHTS)[0]

    def session_frames(self) -> list[Frame]:
        rng = self.rng
        frames = [self.valid(MODEL) if rng.random() < 0.9 else self.mutated(MODEL)]
        expected = DATA
        for _ in range(rng.randint(3, 40)):
            message_type = self._pick_any() if rng.random() < 0.1 else expected
            frames.append(self.mutated(message_type) if rng.random() < 0.1 else self.valid(message_type))
            expected = self._next_in_session(message_type if message_type != UNKNOWN else expected)
        if rng.random() < 0.1:
            frames.append(self.terminal(self._pick_any()))
        return frames

    def chaos_frames(self) -> list[Frame]:
        rng = self.rng
        frames = [self.valid(MODEL)] if rng.random() < 0.3 else []
        for _ in range(rng.randint(1, 20)):
            message_type = self._pick_any()
            frames.append(self.mutated(message_type) if rng.random() < 0.4 else self.valid(message_type))
        if rng.random() < 0.3:
            frames.append(self.terminal(self._pick_any()))
        return frames

    def single_frame(self) -> list[Frame]:
        rng = self.rng
        message_type = self._pick_any()
        if rng.random() < 0.6:
            return [self.terminal(message_type)]
        return [self.mutated(message_type) if rng.random() < 0.5 else self.valid(message_type)]

    def big_session(self, many_tiny: bool = True) -> list[Frame]:
        """The largest frames once, each where it is decoded (a model is loaded before the DATA frames)."""
        frames = [self.valid(MODEL), self.big_frame(DATA, "valid_limit"), self.valid(PROCESS), self.valid(OUTPUT),
                  self.valid(STATS), self.big_frame(MODEL, "valid_limit"), self.big_frame(DATA, "payload_crc_limit"),
                  self.valid(MODEL), self.valid(DATA), self.valid(PROCESS), self.valid(OUTPUT)]
        if many_tiny:
            frames.insert(1, self.many_tiny_big())
        return frames


    def plan(self, kind: str | None = None, many_tiny: bool = True) -> Plan:
        """A connection: frames, write groups, piece sizes, and an early or final close, FIN or RST.

        `kind` forces "session", "chaos", "single" or "big" (the largest frames, with the frame of tiny
        tensors unless `many_tiny` is false); by default it is drawn.
        """
        rng = self.rng
        if kind is None:
            roll = rng.random()
            kind = "session" if roll < 0.62 else "chaos" if roll < 0.87 else "single"
            if kind != "single" and self.budget["many_tiny_big"] > 0 and rng.random() < 0.0005:
                self.budget["many_tiny_big"] -= 1
                kind = "session+many_tiny"
        frames = {"session": self.session_frames, "chaos": self.chaos_frames, "single": self.single_frame,
                  "big": lambda: self.big_session(many_tiny), "session+many_tiny": self.session_frames}[kind]()
        if kind == "session+many_tiny":
            frames.insert(1, self.many_tiny_big())  # right after the MODEL, so that it is decoded
        frames = self._terminal_last(frames)
        plan = Plan(kind, frames)
        total = sum(len(f.data) for f in frames)
        large = any(f.payload_size > 32768 for f in frames)
        roll = rng.random()
        plan.chunking = "whole" if roll < 0.8 or large else "chunks" if roll < 0.97 else "bytes"
        if plan.chunking == "bytes":
            if total > 4096:
                plan.chunking = "chunks"
            elif rng.random() < 0.15:
                plan.byte_delay = 0.0005  # a slow sender, well inside the server's timeout
        # An early close in 30 % of connections, RST in 60 % of those (never in the big session: its
        # frames must all arrive, since memory growth is judged against them).
        if kind != "big" and rng.random() < 0.3:
            point = rng.choices(("before_reply", "mid_frame", "between_process_oks", "before_output_reply"),
                                (35, 30, 20, 15))[0]
            indices = range(len(frames))
            if point == "between_process_oks":
                indices = [i for i, f in enumerate(frames) if f.type_byte == PROCESS and f.mutation == "valid"]
            elif point == "before_output_reply":
                indices = [i for i, f in enumerate(frames) if f.type_byte == OUTPUT]
            if not indices:
                point, indices = "before_reply", range(len(frames))
            plan.close_point = point
            plan.close_index = rng.choice(list(indices))
            plan.close_kind = "rst" if rng.random() < 0.6 else "fin"
            if point == "mid_frame":
                plan.cut = rng.randrange(1, len(frames[plan.close_index].data))
        else:
            plan.close_kind = "rst" if rng.random() < 0.15 else "fin"
        plan.ends = self._groups(plan, large)
        return plan

    @staticmethod
    def _terminal_last(frames: list[Frame]) -> list[Frame]:
        """Cut the plan after its first terminal frame: nothing after it could be attributed."""
        for index, candidate in enumerate(frames):
            if candidate.terminal:
                return frames[:index + 1]
        return frames

    def _groups(self, plan: Plan, large: bool) -> list[int]:
        """Write groups: lockstep (one frame, then its answer), pipelined (all at once) or random groups.

        Pipelined groups are kept under 64 KiB, and plans with large frames go in lockstep, so that
        the server's replies (which we read only after the whole group is written) never fill the
        socket buffers in both directions at once.
        """
        rng = self.rng
        count = plan.last + 1
        mode = "lockstep" if large else rng.choices(("lockstep", "pipelined", "random"), (45, 30, 25))[0]
        ends, size = [], 0
        for index in range(count):
            size += len(plan.frames[index].data)
            closing = index == plan.close_index
            if (mode == "lockstep" or closing or size > 65536 or (mode == "random" and rng.random() < 0.3)
                    or index == count - 1 or plan.frames[index].payload_size > 32768):
                ends.append(index + 1)
                size = 0
        return ends


# ======================================================================================================
# The fuzzer
# ======================================================================================================
class Fuzzer:
    """Runs plans against the server and keeps every figure of the report.

    Parameters
    ----------
    server : ServerProcess
        The running server (restarted here when it dies or hangs).
    generator : Generator
        The source of plans.
    good_model, expected : bytes, np.ndarray
        What the good client uploads, and the output it must get for its input.
    log : callable
        Where progress lines go.
    """

    def __init__(self, server: ServerProcess, generator: Generator, good_model: bytes, expected: np.ndarray,
                 log: Callable[[str], None] = print):
        self.server = server
        self.gen = generator
        self.good_model = good_model
        self.expected = expected
        self.log = log
        self.reply_wait = 2 * server.timeout + 3.0  # the slowest legitimate answer is a frame timing out
        self.table: Counter[tuple[str, str]] = Counter()
        self.mutations: Counter[tuple[str, str]] = Counter()
        self.connections: Counter[str] = Counter()
        self.close_points: Counter[str] = Counter()
        self.anomalies: Counter[str] = Counter()
        self.anomaly_examples: dict[str, list[str]] = {}
        self.deaths: list[dict[str, Any]] = []
        self.hangs: list[dict[str, Any]] = []
        self.hang_checks = 0
        self.frames = 0
        self.largest_payload = 0
        self.recent: deque[tuple[int, str]] = deque(maxlen=64)  # (our local port, plan) of the last connections
        self.rss = RssWatch()
        self.rss_before = 0
        self.rss_fresh = 0
        self.peaks: list[tuple[int, int]] = []  # (peak RSS, fresh RSS) of each server process
        self.warming = False
        self.rss_series: list[tuple[int, int, int]] = []  # (frames, incarnation, RSS) at each good check

    # -- bookkeeping ---------------------------------------------------------------------------------
    def note(self, kind: str, example: str) -> None:
        """Count an anomaly (something a correct server never does) and keep its first examples as evidence."""
        self.anomalies[kind] += 1
        examples = self.anomaly_examples.setdefault(kind, [])
        if len(examples) < 3:
            examples.append(example[:4000])

    def record(self, item: Frame, outcome: str, sent_payload: int) -> None:
        """Count one frame sent under its type and outcome; track the largest payload actually sent."""
        self.table[(item.label, outcome)] += 1
        self.mutations[(item.mutation, outcome)] += 1
        self.frames += 1
        self.largest_payload = max(self.largest_payload, sent_payload)

    # -- one connection --------------------------------------------------------------------------------
    def run_plan(self, plan: Plan) -> None:
        """Send a plan's frames, read and classify the answers, close as planned; bounded in time."""
        try:
            wire = Wire(self.server.port)
        except OSError as error:
            self.check_alive(f"connect failed ({error})")
            return
        self.recent.append((wire.sock.getsockname()[1], plan.describe()))
        outcomes: dict[int, str] = {}
        sent_payload: dict[int, int] = {}
        server_closed, stop_reading, how = False, False, plan.close_kind
        start = 0
        try:
            for end in plan.ends:
                indices = range(start, end)
                start = end
                parts = [plan.frames[i].data for i in indices]
                cut = plan.close_point == "mid_frame" and end - 1 == plan.close_index
                if cut:
                    parts[-1] = parts[-1][:plan.cut]
                for i in indices:
                    outcomes[i] = "no_answer"
                    sent_payload[i] = plan.frames[i].payload_size
                if cut:
                    sent_payload[end - 1] = max(0, plan.cut - HEADER_SIZE)
                written = wire.write(b"".join(parts), plan.chunking, self.gen.rng, plan.byte_delay)
                if written and end - 1 == plan.close_index and plan.close_point in ("before_reply", "mid_frame",
                                                                                    "before_output_reply"):
                    break  # close without reading this group's answers
                # When the write failed the server has closed; the answers it sent first are still read.
                for i in indices:
                    first_only = plan.close_point == "between_process_oks" and i == plan.close_index
                    outcome = self.read_answer(wire, plan.frames[i], first_only, plan)
                    if outcome is None:
                        server_closed = True
                        break
                    outcomes[i] = outcome
                    if outcome in CLOSING_OUTCOMES:
                        server_closed = True
                        break
                    if plan.frames[i].terminal == "desync":
                        stop_reading = True
                        break
                if not written:
                    server_closed = True
                if server_closed or stop_reading:
                    break
            self.finish(wire, plan, server_closed)
        except Stall as error:
            self.note("stall", f"{error}: {plan.describe()}")
            wire.close_rst()
            how = "rst"
        except BadReply as error:
            self.note("invalid_reply", f"{error}: {plan.describe()}")
            wire.close_rst()
            how = "rst"
        self.connections["server_closed_first" if server_closed else how] += 1
        self.close_points[plan.close_point] += 1
        for index, outcome in outcomes.items():
            self.record(plan.frames[index], outcome, sent_payload[index])
        if not self.server.alive():
            self.check_alive("after a connection")

    def read_answer(self, wire: Wire, item: Frame, first_only: bool, plan: Plan) -> str | None:
        """Read the answer(s) to one frame and classify it; None when the server closed instead."""
        deadline = time.monotonic() + self.reply_wait
        reply = wire.read_reply(deadline)
        if reply is None:
            if not wire.reset and not self.server.wait_exit(0.2):
                self.note("closed_without_answer", plan.describe())
            return None
        message_type, payload = reply
        if message_type not in (OK, ERROR):
            self.note("reply_type", f"type {message_type} answering {item.describe()}")
        outcome = classify(message_type, payload)
        if message_type == OK and item.type_byte == PROCESS and not first_only:
            second = wire.read_reply(deadline)  # PROCESS: OK (started), then OK or ERROR (done)
            if second is None:
                if not wire.reset and not self.server.wait_exit(0.2):
                    self.note("closed_between_process_oks", plan.describe())
                return outcome
            outcome = "handler_ok" if second[0] == OK else "handler_error"
        return outcome

    def finish(self, wire: Wire, plan: Plan, server_closed: bool) -> None:
        """Close as planned; a clean close at the end drains the answers until the server's own FIN."""
        if server_closed:
            wire.sock.close()
            return
        if plan.close_kind == "rst":
            wire.close_rst()
            return
        if plan.close_point != "end":
            wire.close_fin()
            return
        try:
            wire.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        extra, closed = wire.drain_until_eof(time.monotonic() + self.reply_wait)
        if extra and not plan.frames[plan.last].terminal:
            self.note("extra_replies", f"{len(extra)} unexpected; replies {wire.transcript}; plan {plan.describe()}")
        if not closed and self.server.alive():
            self.note("no_close_after_fin", plan.describe())
        wire.sock.close()

    # -- deaths and hangs ----------------------------------------------------------------------------------
    def check_alive(self, context: str) -> bool:
        """Whether the server runs; a death is recorded with its exit status and log, and the server restarted."""
        if self.server.alive() and not self.server.wait_exit(0.5 if "connect" in context else 0):
            if "connect" in context:
                self.note("connect_failed", context)
            return True
        death = self.server.exit_description()
        death.update({"context": context, "frames_before": self.frames, "trigger": self.last_served(),
                      "last_connections": [plan for _, plan in list(self.recent)[-3:]]})
        self.deaths.append(death)
        self.log(f"  server died (exit status {death['exit_status']}) after {self.frames} frames: "
                 f"{death['log_tail'][-1] if death['log_tail'] else 'no log'}")
        self.restart()
        return False

    def last_served(self) -> str | None:
        """The plan of the last connection the server's log says it accepted (matched by our local port).

        Deaths show up a moment after the connection that caused them (at the next connect), so the
        last plan sent is not necessarily the culprit; the server's own log line is.
        """
        ports = re.findall(r"client \('127\.0\.0\.1', (\d+)\) connected", "\n".join(self.server.tail(400)))
        if not ports:
            return None
        port = int(ports[-1])
        return next((plan for local, plan in reversed(self.recent) if local == port), None)

    def restart(self) -> None:
        self.server.stop()
        self.server.start()
        self.warm_up()

    def close_incarnation(self) -> None:
        """Keep the peak of the server process that is going away (its peak over its own fresh RSS)."""
        if self.rss.pid is not None and self.rss_fresh:
            self.peaks.append((max(self.rss.peak, self.rss_fresh), self.rss_fresh))

    def warm_up(self) -> tuple[bool, str]:
        """A good session, the largest frames, then the baseline of the memory measurement.

        The first payloads of 1 MiB raise the allocator's high-water mark once (glibc keeps freed
        memory for reuse), and ONNX Runtime initialises itself on the first load: both are paid once
        per process, whatever the number of frames. Measuring from after them makes the growth show
        what the fuzzing itself leaves behind (leaks, per-connection leftovers); the one-time part
        is reported beside it (`rss.fresh_bytes`). The frame of a million tiny tensors goes only to
        the first server process: it costs seconds on a server that decodes each tensor.
        """
        self.close_incarnation()
        self.rss.follow(self.server.proc.pid)
        ok, detail, _ = self.good_session()
        self.rss_fresh = self.server.rss()
        self.rss_before = self.rss_fresh
        if ok and not self.warming:
            self.warming = True
            try:
                self.run_plan(self.gen.plan("big", many_tiny=self.server.incarnation == 1))
                self.good_session()
                self.rss_before = self.server.rss()
            finally:
                self.warming = False
        return ok, detail

    def hang_check(self) -> None:
        """A good client must finish a whole session; otherwise the server is counted as hung (or dead)."""
        self.hang_checks += 1
        ok, detail, seconds = self.good_session()
        if ok:
            self.rss_series.append((self.frames, self.server.incarnation, self.server.rss()))
            return
        if not self.server.alive() or self.server.wait_exit(0.5):
            self.check_alive(f"good session failed: {detail}")
            return
        hang = {"detail": detail, "seconds": round(seconds, 2), "frames_before": self.frames,
                "trigger": self.last_served(), "last_connections": [plan for _, plan in list(self.recent)[-3:]],
                "log_tail": self.server.tail(12)}
        self.hangs.append(hang)
        self.log(f"  server hung after {self.frames} frames: {detail}")
        self.server.stop()
        self.restart()

    def good_session(self, within: float = 10.0) -> tuple[bool, str, float]:
        """MODEL, DATA, PROCESS, OUTPUT (checked against the model), STATS; "busy" is retried until the deadline."""
        start = time.monotonic()
        deadline = start + within
        step = "connect"
        while time.monotonic() < deadline:
            try:
                wire = Wire(self.server.port, connect_timeout=max(0.1, deadline - time.monotonic()))
            except OSError as error:
                step = f"connect ({error})"
                if not self.server.alive():
                    return False, step, time.monotonic() - start
                time.sleep(0.02)
                continue
            try:
                batch = np.linspace(-1, 1, 2 * FEATURES, dtype=np.float32).reshape(2, FEATURES)
                requests = [("MODEL", frame(MODEL, self.good_model), 1), ("DATA", frame(DATA, tensor_list(
                    [float_tensor(batch)])), 1), ("PROCESS", frame(PROCESS), 2), ("OUTPUT", frame(OUTPUT), 1),
                    ("STATS", frame(STATS), 1)]
                answers = {}
                busy = False
                for step, data, replies in requests:
                    if not wire.write(data):
                        raise Stall("the server closed the connection")
                    for _ in range(replies):
                        reply = wire.read_reply(deadline)
                        if reply is None:
                            raise Stall("the server closed the connection")
                        if reply[0] != OK:
                            text = reply[1].decode(errors="replace")
                            if step == "MODEL" and text.startswith("busy"):
                                busy = True
                                break
                            raise Stall(f"ERROR {text!r}")
                        answers[step] = reply[1]
                    if busy:
                        break
                if busy:
                    wire.close_fin()
                    time.sleep(0.01)
                    continue
                (output,) = decode_float_tensors(answers["OUTPUT"])
                if not np.allclose(output, batch @ self.expected + 1, atol=1e-5):
                    return False, f"OUTPUT is wrong: {output.tolist()}", time.monotonic() - start
                stats = json.loads(answers["STATS"])
                if len(stats.get("inference_s", [])) != 1:
                    return False, f"STATS is wrong: {stats}", time.monotonic() - start
                wire.sock.shutdown(socket.SHUT_WR)
                wire.drain_until_eof(min(deadline, time.monotonic() + 2))
                wire.sock.close()
                return True, "", time.monotonic() - start
            except (Stall, BadReply, OSError, ValueError) as error:
                wire.close_rst()
                return False, f"{step}: {error}", time.monotonic() - start
        return False, f"{step}: still busy or unreachable after {within:g} s", time.monotonic() - start

    # -- probes that cost server timeouts (run a few times only) ---------------------------------------------
    def probe_incomplete(self) -> dict[str, Any]:
        """A DATA frame that stops after 10 of its 100 payload bytes: the server must give up after --timeout."""
        item = Frame(header(DATA, 100, 0) + b"x" * 10, DATA, "truncated_wait", 100)
        return self._probe_frame(item, "whole")

    def probe_slow_frame(self) -> dict[str, Any]:
        """A valid STATS frame trickled 1 byte at a time over 3 x --timeout, while a second client knocks.

        The protocol says a frame not complete within the timeout is dropped; a per-read timeout
        instead lets a trickling client hold the single-client server for as long as it likes, and
        then the second client is not even told "busy" until the trickle ends.
        """
        data = frame(STATS)
        item = Frame(data, STATS, "slow_frame", 0)
        knock: dict[str, Any] = {}

        def second_client() -> None:
            time.sleep(self.server.timeout / 2)
            began = time.monotonic()
            try:
                wire = Wire(self.server.port)
                reply = wire.read_reply(began + 10)
                knock["answer"] = classify(*reply) if reply else "closed"
                wire.close_fin()
            except (OSError, Stall, BadReply) as error:
                knock["answer"] = f"{type(error).__name__}: {error}"
            knock["seconds"] = round(time.monotonic() - began, 3)

        thread = threading.Thread(target=second_client, daemon=True)
        thread.start()
        result = self._probe_frame(item, "bytes", byte_delay=3 * self.server.timeout / len(data))
        thread.join(timeout=15)
        result["second_client"] = knock
        return result

    def probe_idle(self) -> dict[str, Any]:
        """A client that connects and sends nothing must be told "no request for ..." and dropped."""
        began = time.monotonic()
        try:
            wire = Wire(self.server.port)
            reply = wire.read_reply(began + self.reply_wait)
            answer = classify(*reply) if reply else "closed without answer"
            wire.close_fin()
        except (OSError, Stall, BadReply) as error:
            answer = f"{type(error).__name__}: {error}"
        return {"answer": answer, "seconds": round(time.monotonic() - began, 3)}

    def _probe_frame(self, item: Frame, chunking: str, byte_delay: float = 0.0) -> dict[str, Any]:
        """Send one frame on a fresh connection and wait for its answer (long enough for a server timeout)."""
        began = time.monotonic()
        outcome = "no_answer"
        try:
            wire = Wire(self.server.port)
            wire.write(item.data, chunking, self.gen.rng, byte_delay)  # on failure, an answer may still be there
            reply = wire.read_reply(time.monotonic() + self.reply_wait)
            if reply is not None:
                outcome = classify(*reply)
                if outcome != "incomplete":
                    self.note("probe_answer", f"{item.describe()}: {wire.transcript}")
            wire.close_fin()
        except (OSError, Stall, BadReply) as error:
            self.note("probe", f"{item.describe()}: {error}")
        self.record(item, outcome, item.payload_size if outcome != "no_answer" else 0)
        self.check_alive("after a probe")
        return {"frame": item.describe(), "answer": outcome, "seconds": round(time.monotonic() - began, 3)}


    def probe_cross_talk(self) -> dict[str, Any]:
        """A second client must never receive the answer to the first client's request.

        Client A sends a MODEL frame in two halves and client B connects in between; then A sends the
        rest, a STATS request, and half-closes. A server that reads A's STATS and accepts B in the
        same round, and lets B replace A before answering, sends A's STATS answer to B. Right for B
        are "busy", or (once A has gone) silence as a fresh session that has sent nothing.
        """
        began = time.monotonic()
        model = frame(MODEL, self.good_model)
        half = HEADER_SIZE + len(self.good_model) // 2
        items = [Frame(model, MODEL, "cross_talk", len(self.good_model)), Frame(frame(STATS), STATS, "cross_talk", 0)]
        outcomes = ["no_answer", "no_answer"]
        result: dict[str, Any] = {"frame": "A: MODEL in two halves, B connects between them, then A: STATS + FIN"}
        try:
            first = Wire(self.server.port)
            first.write(model[:half])
            time.sleep(0.1)
            second = Wire(self.server.port)
            time.sleep(0.1)
            first.write(model[half:] + items[1].data)
            first.sock.shutdown(socket.SHUT_WR)
            replies, _ = first.drain_until_eof(time.monotonic() + self.reply_wait)
            for index, reply in enumerate(replies[:2]):
                outcomes[index] = classify(*reply)
            try:
                reply = second.read_reply(time.monotonic() + 0.6)
                result["second_client"] = classify(*reply) if reply else "closed"
            except Stall:
                result["second_client"] = "nothing (served as a new session)"
            result["first_client"] = first.transcript
            result["second_transcript"] = second.transcript
            first.sock.close()
            second.close_fin()
        except (OSError, Stall, BadReply) as error:
            result["error"] = f"{type(error).__name__}: {error}"
        for item, outcome in zip(items, outcomes):
            self.record(item, outcome, item.payload_size)
        result["answer"] = result.get("second_client", "?")
        result["leak"] = result.get("second_client") in ("handler_ok", "handler_error")
        if result["leak"]:
            self.note("cross_talk", f"B got {result['second_transcript']} while A got {result['first_client']}")
        self.check_alive("after a probe")
        result["seconds"] = round(time.monotonic() - began, 3)
        return result


# ======================================================================================================
# The run
# ======================================================================================================
def run_fuzz(frames: int = 100_000, seed: int = 0, *, server_root: Path | str = REPO, time_limit: float = 900.0,
             check_every: int = 250, max_deaths: int = 25, probes: bool = True, rss_baseline: str = "warm",
             log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Fuzz a freshly started server with about `frames` frames; returns every figure of the report.

    Parameters
    ----------
    frames : int
        Frames to send (the run stops at the first connection that reaches it).
    seed : int
        Seed of the generator: the same seed sends the same plans (answers may differ with timing).
    server_root : path
        Checkout whose edge_ai_lib is served (default: this one).
    time_limit : float
        Wall-clock bound of the fuzzing loop, in seconds.
    check_every : int
        Connections between two good-client sessions (the hang check).
    max_deaths : int
        The run stops after this many server deaths (each costs a restart), so that a server that dies
        on every abrupt close still gives a report in bounded time.
    probes : bool
        Whether to run the probes that wait for the server's timeout or race two clients (~8 s in all).
    rss_baseline : {"warm", "fresh"}
        What the memory growth is measured from: "warm" after the largest frames were sent once (the
        growth then shows what fuzzing leaves behind), "fresh" right after the first good session
        (it then includes the allocator's one-time high-water mark for 1 MiB payloads).
    log : callable or None
        Where progress lines go (None: nowhere).

    Returns
    -------
    dict
        `frames`, `by_type` ({type: {outcome: count}}), `by_mutation`, `outcomes`, `handler_share`,
        `connections`, `close_points`, `deaths` and `death_details`, `hangs` and `hang_details`,
        `anomalies`, `probes`, `rss`, `frames_per_s`, `wall_s`, `loadavg`, `stopped_by`, `failures`
        and `passed`.
    """
    if rss_baseline not in ("warm", "fresh"):
        raise ValueError(f"rss_baseline must be 'warm' or 'fresh', not {rss_baseline!r}")
    log = log or (lambda _line: None)
    began = time.monotonic()
    load_before = os.getloadavg()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="edge-ai-fuzz-") as tmp:
        workdir = Path(tmp)
        weights = write_model(workdir / "good.onnx")
        write_model(workdir / "other.onnx", features=FEATURES + 2)
        good_model = (workdir / "good.onnx").read_bytes()
        generator = Generator(rng, good_model, (workdir / "other.onnx").read_bytes())
        server = ServerProcess(workdir, Path(server_root))
        server.start()
        fuzzer = Fuzzer(server, generator, good_model, weights, log)
        probe_results: dict[str, Any] = {}
        try:
            ok, detail = fuzzer.warm_up()
            if not ok:
                raise RuntimeError(f"the server cannot serve a good session before any fuzzing: {detail}; "
                                   f"its log:\n" + "\n".join(server.tail(20)))
            log(f"fuzzing server pid {server.proc.pid} on {HOST}:{server.port} "
                f"({server.root}), {frames} frames, seed {seed}")
            probe_marks = [(frames // 4, "incomplete"), (frames // 3, "cross_talk"), (frames // 2, "idle"),
                           (frames // 2, "slow_frame"), (2 * frames // 3, "cross_talk"),
                           (3 * frames // 4, "incomplete")] if probes else []
            fuzz_start = time.monotonic()
            deadline = fuzz_start + time_limit
            stopped_by = "frames"
            connections = 0
            next_report = 10_000
            while fuzzer.frames < frames:
                if time.monotonic() >= deadline:
                    stopped_by = "time limit"
                    break
                if len(fuzzer.deaths) >= max_deaths:
                    stopped_by = f"{max_deaths} deaths"
                    break
                fuzzer.run_plan(generator.plan())
                connections += 1
                while probe_marks and fuzzer.frames >= probe_marks[0][0]:
                    name = probe_marks.pop(0)[1]
                    fuzzer.hang_check()  # the server must be up and done with the last connection first
                    probe_results.setdefault(name, []).append(getattr(fuzzer, f"probe_{name}")())
                if connections % check_every == 0:
                    fuzzer.hang_check()
                if fuzzer.frames >= next_report:
                    log(f"  {fuzzer.frames} frames, {connections} connections, {len(fuzzer.deaths)} deaths, "
                        f"{len(fuzzer.hangs)} hangs, {time.monotonic() - fuzz_start:.0f} s")
                    next_report += 10_000
            fuzz_seconds = time.monotonic() - fuzz_start
            for _, name in probe_marks:  # a run stopped early (deaths, time) still gets its probes
                fuzzer.hang_check()
                probe_results.setdefault(name, []).append(getattr(fuzzer, f"probe_{name}")())
            fuzzer.hang_check()
            # The last good session replaced the fuzzed model and inputs: what is left is what stays.
            rss_after = server.rss()
            fuzzer.close_incarnation()
        finally:
            fuzzer.rss.close()
            server.stop()
    return summarize(fuzzer, frames, seed, stopped_by, fuzz_seconds, time.monotonic() - began, rss_after,
                     probe_results, load_before, rss_baseline)


def summarize(fuzzer: Fuzzer, target: int, seed: int, stopped_by: str, fuzz_seconds: float, wall: float,
              rss_after: int, probe_results: dict[str, Any], load_before: tuple[float, ...],
              rss_baseline: str = "warm") -> dict[str, Any]:
    """The figures of a run as plain JSON-able data, with the verdict and the reasons for it."""
    by_type = {label: {o: fuzzer.table[(label, o)] for o in OUTCOMES if fuzzer.table[(label, o)]} for label in LABELS}
    outcomes = {o: sum(fuzzer.table[(label, o)] for label in LABELS) for o in OUTCOMES}
    handler = sum(outcomes[o] for o in HANDLER_OUTCOMES)
    share = handler / fuzzer.frames if fuzzer.frames else 0.0
    baseline = fuzzer.rss_before if rss_baseline == "warm" else fuzzer.rss_fresh
    growth = rss_after - baseline
    bound = RSS_GROWTH_FACTOR * fuzzer.largest_payload
    peak, peak_fresh = max(fuzzer.peaks, key=lambda p: p[0] - p[1], default=(0, 0))
    # A leak keeps growing over the second half of a run; an allocator's high-water mark has levelled off.
    last = [(f, r) for f, i, r in fuzzer.rss_series if i == fuzzer.server.incarnation]
    halfway = [r for f, r in last if f >= fuzzer.frames // 2]
    second_half = rss_after - halfway[0] if len(halfway) >= 2 else None
    by_mutation: dict[str, dict[str, int]] = {}
    for (mutation, outcome), count in sorted(fuzzer.mutations.items()):
        by_mutation.setdefault(mutation, {})[outcome] = count
    findings = []
    for name, runs in probe_results.items():
        for run in runs:
            if name == "slow_frame" and run["answer"] != "incomplete":
                findings.append(f"a frame trickled over {3 * fuzzer.server.timeout:g} s (timeout "
                                f"{fuzzer.server.timeout:g} s) was answered {run['answer']!r}, not dropped; a second "
                                f"client waited {run['second_client'].get('seconds')} s for "
                                f"{run['second_client'].get('answer')!r}")
            if name == "cross_talk" and run.get("leak"):
                findings.append(f"cross-talk: the second client received {run['second_transcript']}, the answer "
                                f"to the first client's STATS")
            if name in ("incomplete", "idle") and run["answer"] != name:
                findings.append(f"probe {name} was answered {run['answer']!r}")
    if peak - peak_fresh >= PEAK_FINDING_FACTOR * max(fuzzer.largest_payload, 1):
        findings.append(f"the server's memory peaked at {(peak - peak_fresh) / 2**20:+.1f} MiB over its fresh size, "
                        f"{(peak - peak_fresh) / max(fuzzer.largest_payload, 1):.0f} x the largest payload")
    failures = []
    if fuzzer.deaths:
        failures.append(f"{len(fuzzer.deaths)} server deaths")
    if fuzzer.hangs:
        failures.append(f"{len(fuzzer.hangs)} hangs")
    if share < MIN_HANDLER_SHARE:
        failures.append(f"handler share {share:.1%} < {MIN_HANDLER_SHARE:.0%}")
    if growth >= bound:
        failures.append(f"RSS growth {growth / 2**20:.2f} MiB >= {RSS_GROWTH_FACTOR:g} x the largest payload "
                        f"({fuzzer.largest_payload / 2**20:.2f} MiB)")
    if fuzzer.frames < target and stopped_by != "frames":
        failures.append(f"stopped after {fuzzer.frames} of {target} frames ({stopped_by})")
    return {
        "frames": fuzzer.frames, "target_frames": target, "seed": seed, "stopped_by": stopped_by,
        "by_type": by_type, "by_mutation": by_mutation, "outcomes": outcomes, "handler_share": share,
        "connections": dict(fuzzer.connections), "close_points": dict(fuzzer.close_points),
        "deaths": len(fuzzer.deaths), "death_details": fuzzer.deaths, "restarts": fuzzer.server.incarnation - 1,
        "hangs": len(fuzzer.hangs), "hang_details": fuzzer.hangs, "hang_checks": fuzzer.hang_checks,
        "anomalies": dict(fuzzer.anomalies), "anomaly_examples": fuzzer.anomaly_examples,
        "probes": probe_results, "findings": findings,
        "rss": {"baseline": rss_baseline, "fresh_bytes": fuzzer.rss_fresh, "warm_bytes": fuzzer.rss_before,
                "before_bytes": baseline, "after_bytes": rss_after, "growth_bytes": growth,
                "largest_payload_bytes": fuzzer.largest_payload, "bound_bytes": bound, "within_bound": growth < bound,
                "peak_bytes": peak, "peak_growth_bytes": peak - peak_fresh, "second_half_growth_bytes": second_half,
                "series": [{"frames": f, "incarnation": i, "rss_bytes": r} for f, i, r in fuzzer.rss_series]},
        "frames_per_s": fuzzer.frames / fuzz_seconds if fuzz_seconds else 0.0, "fuzz_s": fuzz_seconds,
        "wall_s": wall, "loadavg_before": list(load_before), "loadavg": list(os.getloadavg()),
        "server_command": fuzzer.server.command(), "failures": failures, "passed": not failures,
    }


def format_report(result: dict[str, Any]) -> str:
    """The table a person reads: frames by type and outcome, then connections, deaths, hangs, memory, speed."""
    mib = 2 ** 20
    short = {"handler_ok": "hdl OK", "handler_error": "hdl ERR", "header_error": "header", "payload_crc": "pl CRC",
             "unknown_type": "unk type", "incomplete": "incompl", "idle": "idle", "busy": "busy",
             "no_answer": "no answer"}
    columns = [o for o in OUTCOMES if result["outcomes"][o]] or list(OUTCOMES[:2])
    width = max(9, *(len(short[o]) + 1 for o in columns))
    lines = [f"{'type':<8}" + "".join(f"{short[o]:>{width}}" for o in columns) + f"{'total':>{width}}"]
    for label in LABELS:
        row = result["by_type"][label]
        if row:
            lines.append(f"{label:<8}" + "".join(f"{row.get(o, 0):>{width}}" for o in columns)
                         + f"{sum(row.values()):>{width}}")
    lines.append(f"{'total':<8}" + "".join(f"{result['outcomes'][o]:>{width}}" for o in columns)
                 + f"{result['frames']:>{width}}")
    lines.append("(hdl OK / hdl ERR: reached the request handler; header: bad magic, version, header CRC or length; "
                 "pl CRC: payload CRC; no answer: closed before an answer was read)")
    share = result["handler_share"]
    lines.append(f"frames reaching the request handler: {share:.1%} (needs >= {MIN_HANDLER_SHARE:.0%})")
    connections = result["connections"]
    lines.append(f"connections: {sum(connections.values())} ("
                 + ", ".join(f"{k} {v}" for k, v in sorted(connections.items())) + "); close points: "
                 + ", ".join(f"{k} {v}" for k, v in sorted(result["close_points"].items())))
    lines.append(f"deaths: {result['deaths']} (restarts {result['restarts']}); hangs: {result['hangs']} "
                 f"({result['hang_checks']} good-client checks)")
    for death in result["death_details"][:3]:
        last = death["log_tail"][-1] if death["log_tail"] else ""
        lines.append(f"  death: exit status {death['exit_status']} after {death['frames_before']} frames: {last}")
        trigger = death.get("trigger") or (death["last_connections"] or ["?"])[-1]
        lines.append(f"    connection it was serving: {trigger[:600]}")
    for hang in result["hang_details"][:3]:
        lines.append(f"  hang after {hang['frames_before']} frames: {hang['detail']}")
    if result["anomalies"]:
        lines.append("anomalies: " + ", ".join(f"{k} {v}" for k, v in sorted(result["anomalies"].items())))
    for name, runs in result["probes"].items():
        for run in runs:
            extra = f", second client: {run['second_client']}" if "second_client" in run else ""
            lines.append(f"probe {name}: {run['answer']} after {run['seconds']} s{extra}")
    for finding in result["findings"]:
        lines.append(f"finding: {finding}")
    rss = result["rss"]
    lines.append(f"server RSS: fresh {rss['fresh_bytes'] / mib:.1f} MiB, after the largest frames once "
                 f"{rss['warm_bytes'] / mib:.1f} MiB ({(rss['warm_bytes'] - rss['fresh_bytes']) / mib:+.2f} MiB, "
                 f"one-time), peak {rss['peak_bytes'] / mib:.1f} MiB ({rss['peak_growth_bytes'] / mib:+.1f} MiB)")
    lines.append(f"server RSS growth from {rss['baseline']}: {rss['before_bytes'] / mib:.1f} -> "
                 f"{rss['after_bytes'] / mib:.1f} MiB = {rss['growth_bytes'] / mib:+.2f} MiB (bound "
                 f"{rss['bound_bytes'] / mib:.2f} MiB = {RSS_GROWTH_FACTOR:g} x the largest payload "
                 f"{rss['largest_payload_bytes'] / mib:.2f} MiB)")
    last = rss["series"][-1]["incarnation"] if rss["series"] else None
    series = [point["rss_bytes"] / mib for point in rss["series"] if point["incarnation"] == last]
    if series:
        second = rss["second_half_growth_bytes"]
        lines.append(f"server RSS at the good-client checks of the last server process: first {series[0]:.1f}, "
                     f"min {min(series):.1f}, max {max(series):.1f}, last {series[-1]:.1f} MiB ({len(series)} checks)"
                     + (f"; growth over the second half of the run {second / mib:+.2f} MiB" if second is not None
                        else ""))
    lines.append(f"{result['frames']} frames in {result['fuzz_s']:.1f} s: {result['frames_per_s']:.0f} frames/s; "
                 f"wall {result['wall_s']:.1f} s; load average "
                 + " ".join(f"{x:.2f}" for x in result["loadavg"]) + f" ({os.cpu_count()} CPUs)")
    lines.append("PASS" if result["passed"] else "FAIL: " + "; ".join(result["failures"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line: run, print the table, write the JSON; the exit status is the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000, help="Frames to send (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the generator (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="Also write every figure to this JSON file")
    parser.add_argument("--server-root", type=Path, default=REPO,
                        help="Checkout whose edge_ai_lib is served (default: this one)")
    parser.add_argument("--time-limit", type=float, default=900.0,
                        help="Bound on the fuzzing loop, in seconds (default: %(default)s)")
    parser.add_argument("--check-every", type=int, default=250,
                        help="Connections between two good-client hang checks (default: %(default)s)")
    parser.add_argument("--max-deaths", type=int, default=25,
                        help="Stop after this many server deaths (default: %(default)s)")
    parser.add_argument("--rss-baseline", choices=("warm", "fresh"), default="warm",
                        help="Measure memory growth from after the largest frames were sent once (warm) or from "
                             "the fresh server (fresh) (default: %(default)s)")
    parser.add_argument("--no-probes", action="store_true",
                        help="Skip the probes that wait for server timeouts or race two clients")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.check_every < 1 or args.max_deaths < 1 or args.time_limit <= 0:
        parser.error("--frames, --check-every, --max-deaths and --time-limit must be positive")
    result = run_fuzz(args.frames, args.seed, server_root=args.server_root, time_limit=args.time_limit,
                      check_every=args.check_every, max_deaths=args.max_deaths, probes=not args.no_probes,
                      rss_baseline=args.rss_baseline)
    print(format_report(result), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
