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

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_ai_lib.core.args import namespace_to_argv
from edge_ai_lib.core.compiler import ModelCompiler
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import BoardError, ConfigurationError, ConnectionLostError, NotSupportedError
from edge_ai_lib.core.measurements import TimingRecord, build_result, collect_provenance, write_result
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


def _exchange(protocol: RuntimeProtocol, wrapper: ModelWrapper, payload: bytes) -> tuple[float, float, np.ndarray,
                                                                                           dict[str, Any]]:
    """One full per-batch exchange: DATA, PROCESS, OUTPUT, STATS; returns (host s, board s, outputs, stats)."""
    protocol.upload_input(payload)
    host_seconds = protocol.request_processing()
    outputs = wrapper.convert_output_from_bytes(protocol.download_output())
    stats = protocol.download_statistics()
    board_times = stats.get("inference_s", [])
    if len(board_times) != 1:
        raise ConnectionLostError(f"the board reported {len(board_times)} inference times for one PROCESS: its "
                                  "runtime does not follow the protocol")
    return host_seconds, board_times[0], outputs, stats


def run_session(protocol: RuntimeProtocol, wrapper: ModelWrapper, dataset: Dataset, model_bytes: bytes,
                split: str = "validation", warmup: int = 10, max_samples: int | None = None,
                batch_size: int | None = None, progress: bool = True) -> SessionResult:
    """The benchmark session of docs/protocol.md over an initialised client connection.

    The first call and `warmup` more run on the first batch before the measured pass, so each
    sample of the split is evaluated exactly once.
    """
    from tqdm import tqdm

    batch_size = batch_size or dataset.batch_size
    started = time.time()
    model_info = protocol.upload_model(model_bytes)
    board = TimingRecord(warmup_count=warmup, batch_size=batch_size)
    host = TimingRecord(warmup_count=warmup, batch_size=batch_size)
    resources: list[dict[str, Any]] = []
    first_inputs, _ = next(dataset.iter_batches(split, batch_size=batch_size))
    first_payload = wrapper.convert_input_to_bytes(first_inputs)
    while board.in_warmup:
        host_seconds, board_seconds, _, stats = _exchange(protocol, wrapper, first_payload)
        host.add(host_seconds)
        board.add(board_seconds)
        resources += stats.get("resources", [])

    scores, truth, raw = [], [], []
    total = min(dataset.split_size(split), max_samples or dataset.split_size(split))
    start = time.perf_counter()
    with tqdm(total=total, desc=f"board inference ({split})", unit="sample", disable=not progress,
              mininterval=0.5) as bar:
        for inputs, labels in dataset.iter_batches(split, batch_size=batch_size, max_samples=max_samples):
            payload = wrapper.convert_input_to_bytes(inputs)
            host_seconds, board_seconds, outputs, stats = _exchange(protocol, wrapper, payload)
            host.add(host_seconds)
            board.add(board_seconds)
            resources += stats.get("resources", [])
            raw.append(outputs)
            scores.append(wrapper.postprocess_outputs(outputs))
            truth.append(labels)
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
    board_info: dict[str, Any] = {"name": "remote", "host": getattr(args, "host", None)}
    local = None
    if args.board == "ssh":
        raise NotSupportedError("boards of type ssh (deployment over SSH with Fabric) are not implemented yet: "
                                "start inference_server on the board yourself and run inference_client without "
                                "--board, with --host and --port of that server")
    if args.board == "local":
        from edge_ai_lib.boards.local import LocalBoard

        log_path = args.server_log or output / f"{args.reportname}-server.log"
        local = LocalBoard(log_path=log_path)
        server_argv = (namespace_to_argv(classes["protocolcls"].form_argparse()[0], args, skip=("host", "port"))
                       + namespace_to_argv(classes["runtimecls"].form_argparse()[0], args))
        args.host, args.port = local.start_server(protocol_path, runtime_path, server_argv)
        board_info = {"name": local.name, "architecture": local.architecture, "server_log": str(log_path)}
    try:
        protocol = classes["protocolcls"].from_argparse(args)
        protocol.initialize_client()
        try:
            result = run_session(protocol, wrapper, dataset, compiler.compiled_model_path.read_bytes(),
                                 split=args.split, warmup=args.warmup, max_samples=args.max_samples)
        finally:
            protocol.disconnect()
    except ConnectionLostError as error:
        if local is not None and not local.alive():
            raise BoardError(f"the local board's server died during the benchmark ({error}); its log "
                             f"({local.log_path}) ends with:\n{local.log_tail()}") from error
        raise
    finally:
        if local is not None:
            local.stop_server()
    document = session_document(result, wrapper, dataset, args.split, compiled, runtime_path,
                                collect_provenance(vars(args)), board_info)
    from edge_ai_lib.plots import plot_run

    path = write_result(output / f"{args.reportname}.json", document)
    plot_run(document, output, args.reportname)
    stats = document["performance"]["statistics"]
    overhead = document["protocol_overhead"]
    print(f"{args.reportname}: accuracy {result.quality['accuracy']:.4f} on {result.quality['sample_count']} "
          f"{args.split} samples; board median {stats['median'] * 1e3:.3f} ms, p99 {stats['p99'] * 1e3:.3f} ms; "
          f"protocol overhead median {overhead['median_s'] * 1e6:.1f} us; "
          f"session {document['session']['samples_per_second']:.0f} samples/s")
    for warning in document["performance"]["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(run_scenario(main))
