"""The Runtime interface: inference of a compiled model on a board (server side)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.args import ArgumentsMixin
from edge_ai_lib.core.errors import EdgeAIError, ProtocolError, RuntimeFailure
from edge_ai_lib.core.files import atomic_write_bytes
from edge_ai_lib.core.runtimeprotocol import MessageType, RuntimeProtocol, ServerEvent, decode_tensors, encode_tensors

log = logging.getLogger(__name__)


class ResourceSampler:
    """Samples this process's CPU use and resident memory on a background thread."""

    def __init__(self, interval: float = 0.1, limit: int = 100_000):
        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.samples: deque[dict[str, float]] = deque(maxlen=limit)
        self.stop_event = threading.Event()
        self.start_time = time.monotonic()
        self.process.cpu_percent(None)
        self.thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.samples.append({"t": time.monotonic() - self.start_time,
                                 "cpu_percent": self.process.cpu_percent(None),
                                 "rss_bytes": self.process.memory_info().rss})

    def drain(self) -> list[dict[str, float]]:
        drained = []
        while self.samples:
            drained.append(self.samples.popleft())
        return drained

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=2)


class Runtime(ArgumentsMixin):
    """Loads a compiled model on the board, takes inputs, runs them and hands back outputs.

    The board side needs only this, a RuntimeProtocol and one runtime package: no training framework.
    Subclasses implement `load_model`, `set_inputs`, `invoke`, `get_outputs`,
    `get_framework_and_version` and `describe_io`; the session logic, the timing around `invoke`
    and the statistics are here.

    Parameters
    ----------
    protocol : RuntimeProtocol
        The transport to the host (None when the runtime is used in-process).
    save_model_path : Path
        Where the received model is stored on the board; each session stores its model under a name of
        its own next to it (``NAME-PID-SESSION.SUFFIX``), removed when the session ends, so servers
        sharing a directory never write each other's files.
    num_threads : int | None
        Threads the runtime may use (None: the runtime's default).
    """

    arguments_title = "Runtime arguments"

    def __init__(self, protocol: RuntimeProtocol | None, save_model_path: Path, num_threads: int | None = None,
                 resource_interval: float = 0.1):
        self.protocol = protocol
        self.resource_interval = float(resource_interval)
        self.save_model_path = Path(save_model_path)
        self.num_threads = num_threads
        self.model_loaded = False
        self.inputs_ready = False
        self.outputs_ready = False
        self.pending_inference_s: list[float] = []
        self.sampler: ResourceSampler | None = None
        self.session_count = 0
        self.session_model_path: Path | None = None

    # -- to implement ------------------------------------------------------------------------------
    def load_model(self, path: Path) -> None:
        raise NotImplementedError

    def set_inputs(self, tensors: list[np.ndarray]) -> None:
        raise NotImplementedError

    def invoke(self) -> None:
        raise NotImplementedError

    def get_outputs(self) -> list[np.ndarray]:
        raise NotImplementedError

    def get_framework_and_version(self) -> tuple[str, str]:
        raise NotImplementedError

    def describe_io(self) -> dict[str, Any]:
        """Inputs and outputs of the loaded model: names, shapes, dtypes, quantization."""
        raise NotImplementedError

    # -- the steps of a session --------------------------------------------------------------------
    def prepare_model(self, model_bytes: bytes | bytearray | None) -> dict[str, Any]:
        """Store the model (when bytes are given) and load it; returns what OK tells the host.

        Without bytes, the model already at `save_model_path` is loaded (in-process use).
        """
        path = self.save_model_path
        if model_bytes is not None:
            path = self._session_path()
            self.model_loaded = self.inputs_ready = self.outputs_ready = False
            atomic_write_bytes(path, model_bytes, elsewhere="pass another --save-model-path to the server")
        self.model_loaded = self.inputs_ready = self.outputs_ready = False
        start = time.perf_counter()
        self.load_model(path)
        load_time = time.perf_counter() - start
        self.model_loaded = True
        self.pending_inference_s.clear()
        framework, version = self.get_framework_and_version()
        return {"load_time_s": load_time, "model_size_bytes": path.stat().st_size,
                "runtime": framework, "runtime_version": version, "num_threads": self.num_threads,
                "io": self.describe_io()}

    def _session_path(self) -> Path:
        """This session's private model file (see `save_model_path`)."""
        if self.session_model_path is None:
            base = self.save_model_path
            self.session_model_path = base.with_name(f"{base.stem}-{os.getpid()}-{self.session_count}{base.suffix}")
        return self.session_model_path

    def prepare_input(self, data: bytes) -> None:
        if not self.model_loaded:
            raise RuntimeFailure("no model is loaded: send MODEL first")
        self.set_inputs(decode_tensors(data))
        self.inputs_ready = True

    def require_inputs(self) -> None:
        if not self.model_loaded:
            raise RuntimeFailure("no model is loaded: send MODEL first")
        if not self.inputs_ready:
            raise RuntimeFailure("no inputs: send DATA before PROCESS")

    def run(self) -> float:
        """Run inference on the prepared inputs; returns (and records) the time of the runtime call."""
        self.require_inputs()
        start = time.perf_counter()
        self.invoke()
        elapsed = time.perf_counter() - start
        self.pending_inference_s.append(elapsed)
        self.outputs_ready = True
        return elapsed

    def upload_output(self) -> bytes:
        if not self.model_loaded:
            raise RuntimeFailure("no model is loaded: send MODEL first")
        if not self.outputs_ready:
            raise RuntimeFailure("no outputs: send PROCESS before OUTPUT")
        return encode_tensors([np.asarray(t, dtype=np.float32) for t in self.get_outputs()])

    def statistics(self) -> dict[str, Any]:
        stats = {"inference_s": list(self.pending_inference_s),
                 "resources": self.sampler.drain() if self.sampler else []}
        self.pending_inference_s.clear()
        return stats

    # -- the server loop ---------------------------------------------------------------------------
    def handle_message(self, message_type: MessageType, payload: bytes) -> None:
        """Answer one request; runtime errors become ERROR and the session goes on."""
        protocol = self.protocol
        try:
            if payload and message_type in (MessageType.PROCESS, MessageType.OUTPUT, MessageType.STATS):
                raise RuntimeFailure(f"{message_type.name} carries no payload, {len(payload)} bytes came with it: "
                                     "see docs/protocol.md")
            if message_type == MessageType.MODEL:
                info = self.prepare_model(payload)
                protocol.request_success(json.dumps(info).encode())
            elif message_type == MessageType.DATA:
                self.prepare_input(payload)
                protocol.request_success()
            elif message_type == MessageType.PROCESS:
                self.require_inputs()  # refuse before the first OK, not between the two
                if protocol.request_success() is False:
                    return  # the client is gone: nobody waits for this inference
                self.run()
                protocol.request_success()
            elif message_type == MessageType.OUTPUT:
                protocol.request_success(self.upload_output())
            elif message_type == MessageType.STATS:
                protocol.request_success(json.dumps(self.statistics()).encode())
            else:
                protocol.request_failure(f"{message_type.name} is not a request a board answers")
        except EdgeAIError as error:
            log.warning("%s failed: %s", message_type.name, error)
            protocol.request_failure(str(error))
        except Exception as error:  # a broken model or input must not take the board down
            log.exception("%s failed", message_type.name)
            protocol.request_failure(f"{message_type.name} failed on the board: {type(error).__name__}: {error}")

    def reset_session(self) -> None:
        """Forget the last client: its model, inputs, times, and its model file on the board."""
        self.model_loaded = self.inputs_ready = self.outputs_ready = False
        self.pending_inference_s.clear()
        if self.sampler is not None:
            self.sampler.drain()
        if self.session_model_path is not None:
            try:
                self.session_model_path.unlink(missing_ok=True)
            except OSError as error:
                log.warning("cannot remove %s (%s)", self.session_model_path, error.strerror)
            self.session_model_path = None
        self.session_count += 1

    def serve(self, stop: threading.Event | None = None) -> None:
        """Serve clients one at a time until `stop` is set; nothing a client does ends this loop."""
        stop = stop or threading.Event()
        self.sampler = ResourceSampler(self.resource_interval) if self.resource_interval > 0 else None
        try:
            while not stop.is_set():
                try:
                    for event, detail, payload in self.protocol.wait_for_activity():
                        if event == ServerEvent.MESSAGE:
                            self.handle_message(detail, payload)
                        else:
                            self.reset_session()
                except ProtocolError as error:  # a transport that reports a lost client by raising
                    log.info("client lost: %s", error)
                    self.protocol.disconnect()
                    self.reset_session()
                except MemoryError:
                    log.error("out of memory serving a request: dropping the client")
                    self.protocol.disconnect()
                    self.reset_session()
        finally:
            if self.sampler is not None:
                self.sampler.stop()
            self.protocol.close_server()
            self.reset_session()

    # -- arguments ---------------------------------------------------------------------------------
    @classmethod
    def form_argparse(cls):
        parser, group = super().form_argparse()
        group.add_argument("--save-model-path", type=Path, required=True,
                           help="Where the board stores the received model")
        group.add_argument("--num-threads", type=int, default=None,
                           help="Threads the runtime may use (default: the runtime's own choice)")
        group.add_argument("--resource-interval", type=float, default=0.1,
                           help="Seconds between samples of the board's CPU and memory use; 0 turns sampling off "
                                "(default: %(default)s)")
        return parser, group

    @classmethod
    def from_argparse(cls, protocol: RuntimeProtocol | None, args: argparse.Namespace) -> "Runtime":
        return cls(protocol, args.save_model_path, num_threads=args.num_threads,
                   resource_interval=args.resource_interval)


def check_batch(tensor: np.ndarray, expected: list[int], name: str) -> None:
    """Check a tensor against a shape whose -1 entries are free; raise a clear RuntimeFailure."""
    if tensor.ndim != len(expected) or any(e not in (-1, None) and e != d for e, d in zip(expected, tensor.shape)):
        raise RuntimeFailure(f"input '{name}' of shape {tuple(tensor.shape)} does not fit the model's input "
                             f"{tuple(expected)}: check the model wrapper's preprocessing")
