"""The board's half of the session of docs/protocol.md: any Runtime, over any RuntimeProtocol.

A Runtime only runs inference and a transport only moves messages; what the session means (which
request comes first, where a received model is stored, what STATS reports, that nothing a client
does ends the loop) lives here once, so that every runtime is served the same over every transport.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.errors import EdgeAIError, ProtocolError, RuntimeFailure
from edge_ai_lib.core.files import atomic_write_bytes
from edge_ai_lib.core.provenance import machine_provenance
from edge_ai_lib.core.runtime import Runtime
from edge_ai_lib.core.runtimeprotocol import RuntimeProtocol, ServerEvent, SpooledPayload
from edge_ai_lib.core.wire import CRC32C_AVAILABLE, MessageType, decode_tensors, encode_infer_answer, encode_tensors

log = logging.getLogger(__name__)
WITHOUT_PAYLOAD = (MessageType.PROCESS, MessageType.OUTPUT, MessageType.STATS)
# The requests this server answers, listed in its answer to MODEL: a client uses INFER only when listed.
ANSWERED = ["MODEL", "DATA", "PROCESS", "OUTPUT", "STATS", "INFER"]
# The header flags this server understands, listed in its answer to STATS (docs/protocol.md).
FRAME_FLAGS = ["crc_trailer"] + (["crc32c"] if CRC32C_AVAILABLE else [])


class ResourceSampler:
    """Samples this process's CPU use and resident memory on a background thread.

    A thread of its own, so that the samples cover the runtime call too, not only the gaps between
    requests; bounded in number, so that a client that never asks for STATS cannot grow the server.
    """

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
        """The samples taken since the previous drain (STATS reports each sample once)."""
        drained = []
        while self.samples:
            drained.append(self.samples.popleft())
        return drained

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=2)


class InferenceServer:
    """Serves clients one at a time: stores and loads their model, runs their inputs, reports times.

    Every request is answered OK or ERROR; a runtime error becomes ERROR and the session goes on; a
    lost client ends its own session only.

    Parameters
    ----------
    runtime : Runtime
        What runs the model.
    transport : RuntimeProtocol
        Where the clients come from; `initialize_server` is the caller's to call (to learn, e.g., the
        port before serving), `close_server` is called when `serve` ends.
    save_model_path : Path | None
        Where a received model is stored (default: the runtime's --save-model-path). Each session
        stores its model under a name of its own next to it (``NAME-PID-SESSION.SUFFIX``) and removes
        it when the session ends, so servers sharing a directory never write each other's files.
    resource_interval : float | None
        Seconds between samples of CPU and memory use, 0 for none (default: the runtime's
        --resource-interval).
    """

    def __init__(self, runtime: Runtime, transport: RuntimeProtocol, save_model_path: Path | None = None,
                 resource_interval: float | None = None):
        self.runtime = runtime
        self.transport = transport
        self.save_model_path = Path(save_model_path if save_model_path is not None else runtime.save_model_path)
        self.resource_interval = float(resource_interval if resource_interval is not None
                                       else runtime.resource_interval)
        self.model_loaded = self.inputs_ready = self.outputs_ready = False
        self.pending_inference_s: list[float] = []
        self.sampler: ResourceSampler | None = None
        self.session_count = 0
        self.session_model_path: Path | None = None
        # a large model is written to a file beside the session's model file as it arrives, then renamed
        self.transport.spool_directory = self.save_model_path.parent

    # -- the steps of a session --------------------------------------------------------------------
    def load(self, model_bytes: bytes | bytearray | SpooledPayload) -> dict[str, Any]:
        """Store the model in this session's file and load it; returns what OK tells the host.

        Besides the runtime's description of the model (load time, size, threads, I/O), the answer
        carries the board's own provenance: only the board can see its CPU, OS and governor.
        """
        path = self._session_path()
        self.model_loaded = self.inputs_ready = self.outputs_ready = False
        if isinstance(model_bytes, SpooledPayload):  # already a complete, checked file beside `path`
            model_bytes.take(path)
        else:
            atomic_write_bytes(path, model_bytes, elsewhere="pass another --save-model-path to the server")
        info = self.runtime.load_and_describe(path)
        self.model_loaded = True
        self.pending_inference_s.clear()
        return {**info, "provenance": machine_provenance(), "requests": ANSWERED}

    def _session_path(self) -> Path:
        """This session's private model file (see `save_model_path`)."""
        if self.session_model_path is None:
            base = self.save_model_path
            self.session_model_path = base.with_name(f"{base.stem}-{os.getpid()}-{self.session_count}{base.suffix}")
        return self.session_model_path

    def take_inputs(self, data: bytes | bytearray) -> None:
        """Decode DATA's tensor list (every limit checked first) and hand it to the runtime."""
        if not self.model_loaded:
            raise RuntimeFailure("no model is loaded: send MODEL first")
        self.inputs_ready = False  # a refused DATA leaves no inputs behind (docs/protocol.md)
        self.runtime.set_inputs(decode_tensors(data))
        self.inputs_ready = True

    def require_inputs(self) -> None:
        """Refuse PROCESS, naming the request to send first, unless a model and inputs are there."""
        if not self.model_loaded:
            raise RuntimeFailure("no model is loaded: send MODEL first")
        if not self.inputs_ready:
            raise RuntimeFailure("no inputs: send DATA before PROCESS")

    def infer(self) -> float:
        """Run the prepared inputs; returns (and keeps for STATS) the time of the runtime call alone."""
        self.require_inputs()
        elapsed = self.runtime.run()
        self.pending_inference_s.append(elapsed)
        self.outputs_ready = True
        return elapsed

    def outputs(self) -> bytes:
        """The last outputs as a tensor list; always float32, as docs/protocol.md promises the host."""
        if not self.model_loaded:
            raise RuntimeFailure("no model is loaded: send MODEL first")
        if not self.outputs_ready:
            raise RuntimeFailure("no outputs: send PROCESS before OUTPUT")
        return encode_tensors([np.asarray(t, dtype=np.float32) for t in self.runtime.get_outputs()])

    def statistics(self) -> dict[str, Any]:
        """Board-side times and resource samples since the previous STATS (each reported once)."""
        stats = {"inference_s": list(self.pending_inference_s),
                 "resources": self.sampler.drain() if self.sampler else [], "frame_flags": FRAME_FLAGS}
        self.pending_inference_s.clear()
        return stats

    # -- the loop ----------------------------------------------------------------------------------
    def handle_message(self, message_type: MessageType, payload: bytes | bytearray) -> None:
        """Answer one request; runtime errors become ERROR and the session goes on."""
        try:
            if payload and message_type in WITHOUT_PAYLOAD:
                raise RuntimeFailure(f"{message_type.name} carries no payload, {len(payload)} bytes came with it: "
                                     "see docs/protocol.md")
            if message_type == MessageType.MODEL:
                self._ok(json.dumps(self.load(payload)).encode())
            elif message_type == MessageType.DATA:
                self.take_inputs(payload)
                self._ok()
            elif message_type == MessageType.PROCESS:
                self.require_inputs()  # refuse before the first OK, not between the two
                if not self._ok():
                    return  # the client is gone: nobody waits for this inference
                self.infer()
                self._ok()
            elif message_type == MessageType.OUTPUT:
                self._ok(self.outputs())
            elif message_type == MessageType.STATS:
                self._ok(json.dumps(self.statistics()).encode())
            elif message_type == MessageType.INFER:
                self.take_inputs(payload)
                elapsed = self.infer()
                self._ok(encode_infer_answer(elapsed, self.outputs()))
            else:
                self._error(f"{message_type.name} is not a request a board answers")
        except EdgeAIError as error:
            log.warning("%s failed: %s", message_type.name, error)
            self._error(str(error))
        except Exception as error:  # a broken model or input must not take the board down
            log.exception("%s failed", message_type.name)
            self._error(f"{message_type.name} failed on the board: {type(error).__name__}: {error}")

    def _ok(self, payload: bytes = b"") -> bool:
        return self.transport.reply(MessageType.OK, payload)

    def _error(self, reason: str) -> bool:
        return self.transport.reply(MessageType.ERROR, reason.encode())

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
                    for event, detail, payload in self.transport.wait_for_activity():
                        if event == ServerEvent.MESSAGE:
                            try:
                                self.handle_message(detail, payload)
                            finally:
                                if isinstance(payload, SpooledPayload):
                                    payload.discard()  # taken as the model, or refused: never left behind
                        else:
                            self.reset_session()
                except ProtocolError as error:  # a transport that reports a lost client by raising
                    log.info("client lost: %s", error)
                    self.transport.drop_client(None)
                    self.reset_session()
                except MemoryError:
                    log.error("out of memory serving a request: dropping the client")
                    self.transport.drop_client(None)
                    self.reset_session()
        finally:
            if self.sampler is not None:
                self.sampler.stop()
            self.transport.close_server()
            self.reset_session()
