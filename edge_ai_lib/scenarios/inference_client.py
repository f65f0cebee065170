"""Benchmark a compiled model on a board: compile, upload, stream the dataset, judge outputs and speed.

    python -m edge_ai_lib.scenarios.inference_client WRAPPER COMPILER PROTOCOL RUNTIME DATASET \\
        REPORT_DIR REPORT_NAME --model-path ... --compiled-model-path ... --host ... --port ... \\
        [--board local] [--skip-compilation]

Writes REPORT_DIR/REPORT_NAME.json (schema of edge_ai_lib.core.results, kind inference_client)
with the board-side time (around the runtime call, measured on the board) as `performance`, the
host-side time (between the two OKs of PROCESS) as `host_performance`, their difference, the
board's CPU and memory use, the model's load time and size, and the usual plots.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.board import Board
from edge_ai_lib.core.compiler import ModelCompiler
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import (
    BoardError,
    ConfigurationError,
    EdgeAIError,
    ProtocolError,
)
from edge_ai_lib.core.measured_pass import PassPosition, measure_split
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.core.provenance import collect_provenance
from edge_ai_lib.core.results import build_result
from edge_ai_lib.core.runtime import Runtime
from edge_ai_lib.core.runtimeprotocol import ClientSession, RuntimeProtocol
from edge_ai_lib.core.timing import TimingRecord
from edge_ai_lib.scenarios.cli import (
    EVALUATION_OPTIONS,
    REPORT_POSITIONALS,
    ClassArgument,
    ScenarioRun,
    check_evaluation_options,
    parse_scenario_arguments,
    run_scenario,
)
from edge_ai_lib.scenarios.outputs import finish_run


@dataclass
class SessionResult:
    model_info: dict[str, Any]
    board: TimingRecord
    host: TimingRecord
    quality: dict[str, Any]
    resources: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0
    measured_samples: int = 0
    started_unix: float = 0.0
    ended_unix: float = 0.0
    outputs: np.ndarray | None = None  # raw model outputs of the measured pass, in dataset order


class SessionProgress:
    """Where a session is, so that a failure can say which request of which sample it interrupted."""

    def __init__(self) -> None:
        self.phase = "MODEL"
        self.request = "MODEL"
        self.measured_pass = PassPosition()

    def describe(self) -> str:
        if self.phase == "MODEL":
            return "while uploading the model (MODEL)"
        if self.measured_pass.warming_up:
            return f"during the warm-up ({self.request})"
        done, total = self.measured_pass.measured, self.measured_pass.total
        return f"at {self.request} of sample {done + 1} of {total} (after {done} measured)"


def _board_times(stats: dict[str, Any]) -> tuple[float, list[dict[str, Any]]]:
    """The one board-side time and the resource samples of a STATS answer, checked."""
    times = stats.get("inference_s")
    if not isinstance(times, list) or len(times) != 1:
        count = len(times) if isinstance(times, list) else type(times).__name__
        raise ProtocolError(f"the board's STATS must hold 'inference_s', a list of one time per PROCESS; it holds "
                            f"{count}: its runtime does not follow docs/protocol.md")
    (seconds,) = times
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or seconds < 0:
        raise ProtocolError(f"the board's STATS reports an inference time of {seconds!r}, not a number of seconds "
                            ">= 0: its runtime does not follow docs/protocol.md")
    resources = stats.get("resources", [])
    if not isinstance(resources, list) or not all(
            isinstance(r, dict) and all(isinstance(r.get(k), (int, float)) for k in ("t", "cpu_percent", "rss_bytes"))
            for r in resources):
        raise ProtocolError("the board's STATS 'resources' is not a list of {t, cpu_percent, rss_bytes} samples: "
                            "its runtime does not follow docs/protocol.md")
    return float(seconds), resources


def _exchange(session: ClientSession, wrapper: ModelWrapper, payload: bytes,
              progress: SessionProgress) -> tuple[float, float, np.ndarray, list[dict[str, Any]]]:
    """One full per-batch exchange: DATA, PROCESS, OUTPUT, STATS; returns (host s, board s, outputs, resources)."""
    progress.request = "DATA"
    session.upload_input(payload)
    progress.request = "PROCESS"
    host_seconds = session.request_processing()
    progress.request = "OUTPUT"
    try:
        outputs = wrapper.convert_output_from_bytes(session.download_output())
    except ProtocolError:
        raise
    except EdgeAIError as error:
        raise ProtocolError(f"the board's OUTPUT cannot be read: {error}") from error
    progress.request = "STATS"
    board_seconds, resources = _board_times(session.download_statistics())
    return host_seconds, board_seconds, outputs, resources


def where_of(error: BaseException) -> str:
    """Where a session failed, as `run_session` records it on the errors it raises."""
    return getattr(error, "where", "during the session")


def run_session(transport: RuntimeProtocol, wrapper: ModelWrapper, dataset: Dataset, model_bytes: bytes,
                split: str = "validation", warmup: int = 10, max_samples: int | None = None,
                batch_size: int | None = None, progress: bool = True) -> SessionResult:
    """The benchmark session of docs/protocol.md over a connected transport (any RuntimeProtocol).

    The loop is `measure_split`'s, as for a run on the host: the first call and `warmup` more run on
    the first batch before the measured pass, so each sample of the split is evaluated exactly once.
    A failure of the board or of the connection is raised with where the session was (request, sample).
    """
    where = SessionProgress()
    try:
        return _run_session(ClientSession(transport), wrapper, dataset, model_bytes, split, warmup, max_samples,
                            batch_size, progress, where)
    except ProtocolError as error:
        located = type(error)(f"{error} ({where.describe()})")
        located.where = where.describe()
        raise located from error


def _run_session(session: ClientSession, wrapper, dataset, model_bytes, split, warmup, max_samples, batch_size,
                 progress, where: SessionProgress) -> SessionResult:
    started = time.time()
    model_info = session.upload_model(model_bytes)
    where.phase = "inference"
    host = TimingRecord(warmup_count=warmup, batch_size=batch_size or dataset.batch_size)
    resources: list[dict[str, Any]] = []

    def exchange(payload: bytes) -> tuple[float, np.ndarray]:
        """One batch on the board; the loop records the board's time, the host's and the resources go here."""
        host_seconds, board_seconds, outputs, samples = _exchange(session, wrapper, payload, where)
        host.add(host_seconds)
        resources.extend(samples)
        return board_seconds, outputs

    measured = measure_split(dataset, split, wrapper.convert_input_to_bytes, exchange, warmup, batch_size=batch_size,
                             max_samples=max_samples, progress=progress, description="board inference",
                             position=where.measured_pass)
    scores = np.concatenate([wrapper.postprocess_outputs(outputs) for outputs in measured.outputs])
    quality = dataset.evaluate(scores, measured.labels)
    return SessionResult(model_info, measured.timing, host, quality, resources, measured.wall_s,
                         quality["sample_count"], started, time.time(), np.concatenate(measured.outputs))


def session_document(result: SessionResult, wrapper: ModelWrapper, dataset: Dataset, split: str,
                     compiled: dict[str, Any], runtime_class: str, provenance: dict[str, Any],
                     board: dict[str, Any]) -> dict[str, Any]:
    """The result JSON of a board benchmark (kind inference_client)."""
    overhead = np.asarray(result.host.samples_s) - np.asarray(result.board.samples_s)
    cpu = [r["cpu_percent"] for r in result.resources]
    rss = [r["rss_bytes"] for r in result.resources]
    described = dataset.describe(split)
    described["evaluated_sample_count"] = result.quality["sample_count"]
    info = dict(result.model_info)
    compiled = {**compiled, "load_time_s": info.pop("load_time_s", None),
                "size_bytes": info.pop("model_size_bytes", compiled.get("size_bytes"))}
    return build_result("inference_client", wrapper.describe(), described, result.quality, result.board, provenance,
                        extra={
                            "host_performance": result.host.to_dict(),
                            "protocol_overhead": {
                                "unit": "s", "samples_s": overhead.tolist(),
                                "mean_s": float(overhead.mean()), "median_s": float(np.median(overhead)),
                                "p90_s": float(np.percentile(overhead, 90)),
                                "p99_s": float(np.percentile(overhead, 99)),
                            },
                            "session": {"wall_s": result.wall_seconds, "samples": result.measured_samples,
                                        "samples_per_second": result.measured_samples / result.wall_seconds,
                                        "started_unix": result.started_unix, "ended_unix": result.ended_unix},
                            "compiled_model": compiled,
                            "runtime": {"class": runtime_class, **info},
                            "board": board,
                            "board_resources": {
                                "samples": result.resources,
                                "cpu_percent_mean": float(np.mean(cpu)) if cpu else None,
                                "cpu_percent_max": float(np.max(cpu)) if cpu else None,
                                "rss_bytes_max": int(np.max(rss)) if rss else None,
                            },
                        })


OPTIONS = (
    Argument("skip_compilation", bool, False, "Use the model already at --compiled-model-path instead of compiling"),
    *EVALUATION_OPTIONS,
)
LOCAL_BOARD = "edge_ai_lib.boards.local.LocalBoard"


def main(argv: Sequence[str] | None = None) -> None:
    run = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [ClassArgument("model", ModelWrapper, "ModelWrapper class (dotted path)"),
         ClassArgument("compiler", ModelCompiler, "ModelCompiler class (dotted path)"),
         ClassArgument("protocol", RuntimeProtocol, "RuntimeProtocol class (dotted path)"),
         ClassArgument("runtime", Runtime, "Runtime class (dotted path)"),
         ClassArgument("dataset", Dataset, "Dataset class (dotted path)"), *REPORT_POSITIONALS,
         ClassArgument("board", Board, f"Board class (dotted path, e.g. {LOCAL_BOARD}) that starts the server "
                                        "itself, instead of connecting to a running one at --host/--port",
                       option=True)],
        options=OPTIONS, argv=argv)
    args = run.options
    check_evaluation_options(args)
    dataset = run.build("dataset")
    wrapper = run.build("model", dataset, True)
    compiler = run.build("compiler", dataset)
    if args.skip_compilation:
        if not compiler.compiled_model_path.is_file():
            raise ConfigurationError(f"--skip-compilation was given but {compiler.compiled_model_path} does not "
                                     "exist: compile it first (model_compilation) or drop --skip-compilation")
        compiled = compiler.compiled_description()
    else:
        compiled = compiler.compile_model(wrapper)
    output = Path(args.output)
    model_bytes = compiler.compiled_model_path.read_bytes()
    if "board" in run.classes:
        board = run.build("board", **({} if run.settings("board").get("log_path") else
                                      {"log_path": output / f"{args.reportname}-server.log"}))
        with board.exclusive(), board:
            result = _run_on_board(run, board, wrapper, dataset, model_bytes)
        board_info = {**board.describe(), "server_log": str(board.log_path)}
    else:
        protocol = run.settings("protocol")
        board_info = {"name": f"{protocol.get('host')}:{protocol.get('port')}", **protocol}
        result = _run_on_server(run, wrapper, dataset, model_bytes, board_info["name"])
    document = session_document(result, wrapper, dataset, args.split, compiled, run.class_path("runtime"),
                                collect_provenance(run.spec), board_info)
    stats = document["performance"]["statistics"]
    overhead = document["protocol_overhead"]
    finish_run(output, args.reportname, document,
               f"{args.reportname}: accuracy {result.quality['accuracy']:.4f} on {result.quality['sample_count']} "
               f"{args.split} samples; board median {stats['median'] * 1e3:.3f} ms, p99 {stats['p99'] * 1e3:.3f} ms; "
               f"protocol overhead median {overhead['median_s'] * 1e6:.1f} us; "
               f"session {document['session']['samples_per_second']:.0f} samples/s")


def _run_on_server(run: ScenarioRun, wrapper, dataset, model_bytes: bytes, board_name: str | None,
                   address: tuple[str, int] | None = None) -> SessionResult:
    """The session with the server at `address` (default: the protocol's host and port); errors name
    `board_name` when given."""
    extra = {"host": address[0], "port": address[1]} if address else {}
    protocol = run.build("protocol", **extra)
    args = run.options
    try:
        protocol.initialize_client()
        try:
            return run_session(protocol, wrapper, dataset, model_bytes, split=args.split, warmup=args.warmup,
                               max_samples=args.max_samples)
        finally:
            protocol.disconnect()
    except ProtocolError as error:
        if board_name is None:
            raise
        raise type(error)(f"board '{board_name}': {error}") from error


def _run_on_board(run: ScenarioRun, board: Board, wrapper, dataset, model_bytes: bytes) -> SessionResult:
    """Start the server on `board` with the protocol's and runtime's settings (as data), run the session."""
    board.deploy()
    address = board.start({role: {"class": run.class_path(role), "args": run.settings(role)}
                           for role in ("protocol", "runtime")})
    try:
        return _run_on_server(run, wrapper, dataset, model_bytes, None, address)
    except ProtocolError as error:
        status = board.exit_status()
        if status is None:
            raise type(error)(f"board '{board.name}': {error}") from error
        raise BoardError(f"the server of board '{board.name}' died (exit status {status}) {where_of(error)}; its "
                         f"log ({board.log_path}) ends with:\n{board.log_tail()}") from error


if __name__ == "__main__":
    sys.exit(run_scenario(main))
