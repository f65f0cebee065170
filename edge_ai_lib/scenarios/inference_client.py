"""Benchmark a compiled model on a board: compile, upload, stream the dataset, judge outputs and speed.

    python -m edge_ai_lib.scenarios.inference_client WRAPPER COMPILER PROTOCOL RUNTIME DATASET \\
        REPORT_DIR REPORT_NAME --model-path ... --compiled-model-path ... --host ... --port ... \\
        [--board local] [--skip-compilation]

Writes REPORT_DIR/REPORT_NAME.json (schema of edge_ai_lib.core.measurements, kind inference_client)
with the board-side time (around the runtime call, measured on the board) as `performance`, the
host-side time (between the two OKs of PROCESS) as `host_performance`, their difference, the
board's CPU and memory use, the model's load time and size, and the usual plots.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_ai_lib.core.args import namespace_to_argv
from edge_ai_lib.core.compiler import ModelCompiler
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import (
    BoardError,
    ConfigurationError,
    ConnectionLostError,
    EdgeAIError,
    NotSupportedError,
    ProtocolError,
)
from edge_ai_lib.core.measurements import TimingRecord, build_result, collect_provenance
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.core.runtime import Runtime
from edge_ai_lib.core.runtimeprotocol import RuntimeProtocol
from edge_ai_lib.scenarios.cli import (
    REPORT_POSITIONALS,
    ClassArgument,
    add_evaluation_arguments,
    check_evaluation_arguments,
    parse_scenario_arguments,
    run_scenario,
)


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
        self.done = 0
        self.total: int | None = None

    def describe(self) -> str:
        if self.phase == "MODEL":
            return "while uploading the model (MODEL)"
        if self.phase == "warm-up":
            return f"during the warm-up ({self.request})"
        return f"at {self.request} of sample {self.done + 1} of {self.total} (after {self.done} measured)"


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


def _exchange(protocol: RuntimeProtocol, wrapper: ModelWrapper, payload: bytes,
              progress: SessionProgress) -> tuple[float, float, np.ndarray, list[dict[str, Any]]]:
    """One full per-batch exchange: DATA, PROCESS, OUTPUT, STATS; returns (host s, board s, outputs, resources)."""
    progress.request = "DATA"
    protocol.upload_input(payload)
    progress.request = "PROCESS"
    host_seconds = protocol.request_processing()
    progress.request = "OUTPUT"
    try:
        outputs = wrapper.convert_output_from_bytes(protocol.download_output())
    except ProtocolError:
        raise
    except EdgeAIError as error:
        raise ProtocolError(f"the board's OUTPUT cannot be read: {error}") from error
    progress.request = "STATS"
    board_seconds, resources = _board_times(protocol.download_statistics())
    return host_seconds, board_seconds, outputs, resources


def where_of(error: BaseException) -> str:
    """Where a session failed, as `run_session` records it on the errors it raises."""
    return getattr(error, "where", "during the session")


def run_session(protocol: RuntimeProtocol, wrapper: ModelWrapper, dataset: Dataset, model_bytes: bytes,
                split: str = "validation", warmup: int = 10, max_samples: int | None = None,
                batch_size: int | None = None, progress: bool = True) -> SessionResult:
    """The benchmark session of docs/protocol.md over an initialised client connection.

    The first call and `warmup` more run on the first batch before the measured pass, so each
    sample of the split is evaluated exactly once. A failure of the board or of the connection is
    raised with where the session was (request, sample).
    """
    where = SessionProgress()
    try:
        return _run_session(protocol, wrapper, dataset, model_bytes, split, warmup, max_samples, batch_size,
                            progress, where)
    except ProtocolError as error:
        located = type(error)(f"{error} ({where.describe()})")
        located.where = where.describe()
        raise located from error


def _run_session(protocol, wrapper, dataset, model_bytes, split, warmup, max_samples, batch_size, progress,
                 where: SessionProgress) -> SessionResult:
    from tqdm import tqdm

    batch_size = batch_size or dataset.batch_size
    started = time.time()
    model_info = protocol.upload_model(model_bytes)
    board = TimingRecord(warmup_count=warmup, batch_size=batch_size)
    host = TimingRecord(warmup_count=warmup, batch_size=batch_size)
    resources: list[dict[str, Any]] = []
    first_inputs, _ = next(dataset.iter_batches(split, batch_size=batch_size))
    first_payload = wrapper.convert_input_to_bytes(first_inputs)
    where.phase = "warm-up"
    while board.in_warmup:
        host_seconds, board_seconds, _, samples = _exchange(protocol, wrapper, first_payload, where)
        host.add(host_seconds)
        board.add(board_seconds)
        resources += samples

    scores, truth, raw = [], [], []
    total = min(dataset.split_size(split), max_samples or dataset.split_size(split))
    where.phase, where.total = "measure", total
    start = time.perf_counter()
    with tqdm(total=total, desc=f"board inference ({split})", unit="sample", disable=not progress,
              mininterval=0.5) as bar:
        for inputs, labels in dataset.iter_batches(split, batch_size=batch_size, max_samples=max_samples):
            payload = wrapper.convert_input_to_bytes(inputs)
            host_seconds, board_seconds, outputs, samples = _exchange(protocol, wrapper, payload, where)
            host.add(host_seconds)
            board.add(board_seconds)
            resources += samples
            raw.append(outputs)
            scores.append(wrapper.postprocess_outputs(outputs))
            truth.append(labels)
            where.done += len(labels)
            bar.update(len(labels))
    wall = time.perf_counter() - start
    quality = dataset.evaluate(np.concatenate(scores), np.concatenate(truth))
    return SessionResult(model_info, board, host, quality, resources, wall, quality["sample_count"],
                         started, time.time(), np.concatenate(raw))


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


def _own_arguments(group) -> None:
    group.add_argument("--skip-compilation", action="store_true",
                       help="Use the model already at --compiled-model-path instead of compiling")
    add_evaluation_arguments(group)
    group.add_argument("--board", default=None, choices=["local", "ssh"],
                       help="Start the server on this board first (local: a subprocess on loopback) instead of "
                            "connecting to --host/--port")
    group.add_argument("--server-log", type=Path, default=None,
                       help="With --board: where to keep the server's log (default: REPORT_DIR/REPORT_NAME-server.log)")
    group.add_argument("--board-name", default=None,
                       help="The board's name (its key in the config), used in messages, results and its lock "
                            "(default: 'local' with --board local, else HOST:PORT)")
    group.add_argument("--board-lock-timeout", type=float, default=600.0,
                       help="With --board: seconds to wait while another benchmark holds the board before failing "
                            "with the holder's description (default: %(default)s)")


def main(argv: Sequence[str] | None = None) -> None:
    args, classes = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [ClassArgument("modelwrappercls", ModelWrapper, "ModelWrapper class (dotted path)"),
         ClassArgument("compilercls", ModelCompiler, "ModelCompiler class (dotted path)"),
         ClassArgument("protocolcls", RuntimeProtocol, "RuntimeProtocol class (dotted path)"),
         ClassArgument("runtimecls", Runtime, "Runtime class (dotted path)"),
         ClassArgument("datasetcls", Dataset, "Dataset class (dotted path)"), *REPORT_POSITIONALS],
        add_own=_own_arguments, argv=argv)
    check_evaluation_arguments(args)
    dataset = classes["datasetcls"].from_argparse(args)
    wrapper = classes["modelwrappercls"].from_argparse(dataset, args, from_file=True)
    compiler = classes["compilercls"].from_argparse(dataset, args)
    if args.skip_compilation:
        if not compiler.compiled_model_path.is_file():
            raise ConfigurationError(f"--skip-compilation was given but {compiler.compiled_model_path} does not "
                                     "exist: compile it first (model_compilation) or drop --skip-compilation")
        sidecar = compiler.compiled_model_path.with_name(compiler.compiled_model_path.name + ".json")
        compiled = {**compiler.describe(), **(json.loads(sidecar.read_text()) if sidecar.is_file() else {})}
        compiled.pop("provenance", None)
    else:
        from edge_ai_lib.scenarios.model_compilation import compile_model

        compiled = compile_model(wrapper, compiler)
    output = Path(args.output)
    protocol_path = f"{classes['protocolcls'].__module__}.{classes['protocolcls'].__name__}"
    runtime_path = f"{classes['runtimecls'].__module__}.{classes['runtimecls'].__name__}"
    if args.board == "ssh":
        raise NotSupportedError("boards of type ssh (deployment over SSH with Fabric) are not implemented yet: "
                                "start inference_server on the board yourself and run inference_client without "
                                "--board, with --host and --port of that server")
    model_bytes = compiler.compiled_model_path.read_bytes()
    with contextlib.ExitStack() as stack:
        if args.board == "local":
            board_name = args.board_name or "local"
            from edge_ai_lib.boards.lock import BoardLock

            # Every local board is this host: they share one lock whatever their names in the config.
            stack.enter_context(BoardLock("local", timeout=args.board_lock_timeout))
            result, board_info = _run_on_local_board(args, classes, wrapper, dataset, model_bytes, output,
                                                     protocol_path, runtime_path, board_name)
        else:
            board_name = args.board_name or f"{args.host}:{args.port}"
            board_info = {"name": board_name, "host": args.host, "port": args.port}
            result = _run_on_server(args, classes, wrapper, dataset, model_bytes, board_name)
    document = session_document(result, wrapper, dataset, args.split, compiled, runtime_path,
                                collect_provenance(vars(args)), board_info)
    from edge_ai_lib.plots import write_run_outputs

    path, _ = write_run_outputs(output, args.reportname, document)  # the result appears last, after the plots
    stats = document["performance"]["statistics"]
    overhead = document["protocol_overhead"]
    print(f"{args.reportname}: accuracy {result.quality['accuracy']:.4f} on {result.quality['sample_count']} "
          f"{args.split} samples; board median {stats['median'] * 1e3:.3f} ms, p99 {stats['p99'] * 1e3:.3f} ms; "
          f"protocol overhead median {overhead['median_s'] * 1e6:.1f} us; "
          f"session {document['session']['samples_per_second']:.0f} samples/s")
    for warning in document["performance"]["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {path}")


def _run_on_server(args, classes, wrapper, dataset, model_bytes: bytes, board_name: str | None) -> SessionResult:
    """The session with the server at --host/--port; errors name `board_name` when given."""
    protocol = classes["protocolcls"].from_argparse(args)
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


def _run_on_local_board(args, classes, wrapper, dataset, model_bytes: bytes, output: Path, protocol_path: str,
                        runtime_path: str, board_name: str) -> tuple[SessionResult, dict[str, Any]]:
    from edge_ai_lib.boards.local import LocalBoard

    log_path = args.server_log or output / f"{args.reportname}-server.log"
    server_argv = (namespace_to_argv(classes["protocolcls"].form_argparse()[0], args, skip=("host", "port"))
                   + namespace_to_argv(classes["runtimecls"].form_argparse()[0], args))
    with LocalBoard(name=board_name, log_path=log_path) as local:
        args.host, args.port = local.start_server(protocol_path, runtime_path, server_argv)
        board_info = {"name": board_name, "type": "local", "architecture": local.architecture,
                      "server_log": str(log_path)}
        try:
            return _run_on_server(args, classes, wrapper, dataset, model_bytes, None), board_info
        except ProtocolError as error:
            try:  # a server that is dying may close the connection a moment before it exits
                local.process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                raise type(error)(f"board '{board_name}': {error}") from error
            raise BoardError(f"the server of board '{board_name}' died (exit status {local.process.returncode}) "
                             f"{where_of(error)}; its log ({local.log_path}) ends with:\n{local.log_tail()}") from error


if __name__ == "__main__":
    sys.exit(run_scenario(main))
