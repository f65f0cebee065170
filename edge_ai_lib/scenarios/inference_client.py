"""Benchmark a compiled model on a board: compile, upload, stream the dataset, judge outputs and speed.

    python -m edge_ai_lib.scenarios.inference_client WRAPPER COMPILER PROTOCOL RUNTIME DATASET \\
        REPORT_DIR REPORT_NAME --model-path ... --compiled-model-path ... --host ... --port ... \\
        [--board local] [--skip-compilation] [--run '{"model": KEY, "compiler": KEY, "board": KEY, "threads": N}']

Writes REPORT_DIR/REPORT_NAME.json (schema of edge_ai_lib.core.results, kind inference_client)
with the run's identity (`run`: the config keys given with --run, the threads the runtime ran on,
the settings of compiler, runtime, protocol and board), the board-side time (around the runtime
call, measured on the board) as `performance`, the host-side time (between the two OKs of PROCESS)
as `host_performance`, their difference, the board's CPU and memory use and its own provenance, the
model's load time and size, each sample's predicted and true class (`outcomes`), the raw outputs
(REPORT_NAME-outputs.npy) and the usual plots, all written as one step (the JSON last).
"""

from __future__ import annotations

import logging
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
    AnswerDeadlineError,
    BoardError,
    ConfigurationError,
    EdgeAIError,
    ProtocolError,
)
from edge_ai_lib.core.measured_pass import PassPosition, measure_split
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.core.provenance import collect_provenance
from edge_ai_lib.core.results import build_result, outcomes_section, outputs_file_name
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

log = logging.getLogger(__name__)


SEED_PATH = "DATA PROCESS OUTPUT STATS"
FAST_PATH = "INFER"


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
    scores: np.ndarray | None = None  # the post-processed outputs the quality was computed from
    labels: np.ndarray | None = None  # the true classes, in the same order
    requests: str = SEED_PATH  # the requests each batch took: the seed's four, or INFER


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


def _resource_samples(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The resource samples of a STATS answer, checked."""
    resources = stats.get("resources", [])
    if not isinstance(resources, list) or not all(
            isinstance(r, dict) and all(isinstance(r.get(k), (int, float)) for k in ("t", "cpu_percent", "rss_bytes"))
            for r in resources):
        raise ProtocolError("the board's STATS 'resources' is not a list of {t, cpu_percent, rss_bytes} samples: "
                            "its runtime does not follow docs/protocol.md")
    return resources


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
    return float(seconds), _resource_samples(stats)


def _read_outputs(wrapper: ModelWrapper, data: bytes | bytearray | memoryview, request: str) -> np.ndarray:
    try:
        return wrapper.convert_output_from_bytes(data)
    except ProtocolError:
        raise
    except EdgeAIError as error:
        raise ProtocolError(f"the board's {request} answer cannot be read: {error}") from error


def _infer(session: ClientSession, wrapper: ModelWrapper, payload: bytes,
           progress: SessionProgress) -> tuple[float, float, np.ndarray, list[dict[str, Any]]]:
    """One batch on the fast path: INFER, one round trip; resources are fetched once, after the pass."""
    progress.request = "INFER"
    host_seconds, board_seconds, outputs = session.infer(payload)
    return host_seconds, board_seconds, _read_outputs(wrapper, outputs, "INFER"), []


def _exchange(session: ClientSession, wrapper: ModelWrapper, payload: bytes,
              progress: SessionProgress) -> tuple[float, float, np.ndarray, list[dict[str, Any]]]:
    """One batch on the seed's path: DATA, PROCESS, OUTPUT, STATS; returns (host s, board s, outputs, resources)."""
    progress.request = "DATA"
    session.upload_input(payload)
    progress.request = "PROCESS"
    host_seconds = session.request_processing()
    progress.request = "OUTPUT"
    outputs = _read_outputs(wrapper, session.download_output(), "OUTPUT")
    progress.request = "STATS"
    board_seconds, resources = _board_times(session.download_statistics())
    return host_seconds, board_seconds, outputs, resources


def where_of(error: BaseException) -> str:
    """Where a session failed, as `run_session` records it on the errors it raises."""
    return getattr(error, "where", "during the session")


def run_session(transport: RuntimeProtocol, wrapper: ModelWrapper, dataset: Dataset, model_bytes: bytes,
                split: str = "validation", warmup: int = 10, max_samples: int | None = None,
                batch_size: int | None = None, progress: bool = True, fast: bool = True) -> SessionResult:
    """The benchmark session of docs/protocol.md over a connected transport (any RuntimeProtocol).

    The loop is `measure_split`'s, as for a run on the host: the first call and `warmup` more run on
    the first batch before the measured pass, so each sample of the split is evaluated exactly once.
    A failure of the board or of the connection is raised with where the session was (request, sample).
    """
    where = SessionProgress()
    try:
        return _run_session(ClientSession(transport), wrapper, dataset, model_bytes, split, warmup, max_samples,
                            batch_size, progress, where, fast)
    except ProtocolError as error:
        located = type(error)(f"{error} ({where.describe()})")
        located.where = where.describe()
        located.request = where.request
        located.position = (None if where.phase == "MODEL" else "during the warm-up" if where.measured_pass.warming_up
                            else f"at sample {where.measured_pass.measured + 1}")
        raise located from error


def _run_session(session: ClientSession, wrapper, dataset, model_bytes, split, warmup, max_samples, batch_size,
                 progress, where: SessionProgress, fast: bool = True) -> SessionResult:
    started = time.time()
    model_info = session.upload_model(model_bytes)
    answered = model_info.get("requests")
    fast = fast and isinstance(answered, list) and FAST_PATH in answered
    step = _infer if fast else _exchange
    where.phase = "inference"
    host = TimingRecord(warmup_count=warmup, batch_size=batch_size or dataset.batch_size)
    resources: list[dict[str, Any]] = []

    def exchange(payload: bytes) -> tuple[float, np.ndarray]:
        """One batch on the board; the loop records the board's time, the host's and the resources go here."""
        host_seconds, board_seconds, outputs, samples = step(session, wrapper, payload, where)
        host.add(host_seconds)
        resources.extend(samples)
        return board_seconds, outputs

    measured = measure_split(dataset, split, wrapper.convert_input_to_bytes, exchange, warmup, batch_size=batch_size,
                             max_samples=max_samples, progress=progress, description="board inference",
                             position=where.measured_pass)
    if fast:
        where.request = "STATS"
        resources.extend(_resource_samples(session.download_statistics()))
    scores = np.concatenate([wrapper.postprocess_outputs(outputs) for outputs in measured.outputs])
    quality = dataset.evaluate(scores, measured.labels)
    return SessionResult(model_info, measured.timing, host, quality, resources, measured.wall_s,
                         quality["sample_count"], started, time.time(), np.concatenate(measured.outputs), scores,
                         measured.labels, FAST_PATH if fast else SEED_PATH)


RUN_KEYS = {"model": str, "compiler": str, "board": str, "threads": int}


def check_run_keys(given: dict[str, Any] | None) -> dict[str, Any]:
    """The --run option checked before any work: only the known keys, each of its type (or null)."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(RUN_KEYS))
    if unknown:
        raise ConfigurationError(f"--run has no key '{unknown[0]}'; known: {', '.join(RUN_KEYS)}")
    for key, value in given.items():
        kind = RUN_KEYS[key]
        if value is None:
            continue
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigurationError(f"--run's {key} must be a whole number of threads, 1 or more, or null; "
                                     f"got {value!r}")
        if kind is str and (not isinstance(value, str) or not value):
            raise ConfigurationError(f"--run's {key} must be the {key}'s key in the config (a non-empty string) "
                                     f"or null; got {value!r}")
    return given


def _whole_number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def run_identity(given: dict[str, Any] | None, model_info: dict[str, Any], board_name: str,
                 settings: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The result's `run` and any warning about it.

    The config keys are those given (--run; a hand run may leave them out, then the board is named by
    its own name). The threads are those the board's runtime reports it ran on (`threads` in its
    answer to MODEL); a board that does not say is taken at the requested count, and the result says so.

    Parameters
    ----------
    given : dict[str, Any] | None
        The checked --run option (see `check_run_keys`).
    model_info : dict[str, Any]
        The board's answer to MODEL.
    board_name : str
        The board's own name (the local board's, or host:port of a running server).
    settings : dict[str, Any]
        The class and arguments of compiler, runtime, protocol and board (None without one).
    """
    given = check_run_keys(given)
    reported = _whole_number(model_info.get("threads"))
    requested = _whole_number(given.get("threads"))
    if requested is None:
        requested = _whole_number((settings["runtime"].get("args") or {}).get("num_threads"))
    warnings = []
    if reported is not None and requested is not None and reported != requested:
        warnings.append(f"the runtime ran on {reported} threads, {requested} were asked for: set the runtime's "
                        "num_threads on the board (runtime_args) to the count the run is keyed by")
    run = {"model": given.get("model"), "compiler": given.get("compiler"), "board": given.get("board") or board_name,
           "threads": reported if reported is not None else requested, "threads_requested": requested,
           "threads_reported_by_board": reported is not None, "settings": settings}
    return run, warnings


def _board_provenance(model_info: dict[str, Any]) -> dict[str, Any] | None:
    """The board's own provenance from its answer to MODEL; None for a board that sends none."""
    provenance = model_info.pop("provenance", None)
    if provenance is not None and not isinstance(provenance, dict):
        log.warning("the board's 'provenance' in its answer to MODEL is not a JSON object; it is left out")
        return None
    return provenance


def session_document(result: SessionResult, wrapper: ModelWrapper, dataset: Dataset, split: str,
                     compiled: dict[str, Any], runtime_class: str, provenance: dict[str, Any],
                     board: dict[str, Any], run: dict[str, Any] | None = None,
                     settings: dict[str, Any] | None = None, outputs_file: str | None = None) -> dict[str, Any]:
    """The result JSON of a board benchmark (kind inference_client).

    Parameters
    ----------
    run : dict[str, Any] | None
        The --run option: the config keys of model, compiler and board, the requested threads.
    settings : dict[str, Any] | None
        The class and arguments of compiler, runtime, protocol and board, stored in `run`.
    outputs_file : str | None
        The name of the raw outputs' file beside the JSON (see `outputs_file_name`); None keeps none.
    """
    overhead = np.asarray(result.host.samples_s) - np.asarray(result.board.samples_s)
    cpu = [r["cpu_percent"] for r in result.resources]
    rss = [r["rss_bytes"] for r in result.resources]
    described = dataset.describe(split)
    described["evaluated_sample_count"] = result.quality["sample_count"]
    info = dict(result.model_info)
    board_provenance = _board_provenance(info)
    compiled = {**compiled, "load_time_s": info.pop("load_time_s", None),
                "size_bytes": info.pop("model_size_bytes", compiled.get("size_bytes"))}
    settings = settings or {"compiler": {"class": compiled.get("compiler", "?"), "args": compiled.get("settings", {})},
                            "runtime": {"class": runtime_class, "args": {}}, "protocol": None, "board": None}
    identity, warnings = run_identity(run, result.model_info, board.get("name") or "?", settings)
    scores = result.scores if result.scores is not None else result.outputs
    document = build_result(
        "inference_client", wrapper.describe(), described, result.quality, result.board, provenance,
        extra={
            "run": identity,
            "outcomes": outcomes_section(scores, result.labels, result.outputs, outputs_file),
            "board_provenance": board_provenance,
            "host_performance": result.host.to_dict(),
            "protocol_overhead": {
                "unit": "s", "samples_s": overhead.tolist(),
                "mean_s": float(overhead.mean()), "median_s": float(np.median(overhead)),
                "p90_s": float(np.percentile(overhead, 90)),
                "p99_s": float(np.percentile(overhead, 99)),
            },
            "session": {"requests": result.requests, "wall_s": result.wall_seconds,
                        "samples": result.measured_samples,
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
    document["performance"]["warnings"].extend(warnings)
    return document


OPTIONS = (
    Argument("skip_compilation", bool, False, "Use the model already at --compiled-model-path instead of compiling"),
    Argument("run", dict, None, "The run's identity, stored in the result: a JSON object with the config keys "
             '"model", "compiler", "board" and the requested "threads" (each may be left out by a hand run)'),
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
    check_run_keys(args.run)
    dataset = run.build("dataset")
    wrapper = run.build("model", dataset, True)
    compiler = run.build("compiler", dataset)
    if args.skip_compilation:
        compiled = compiler.compiled_description()
        if "failure" in compiled:
            _write_failed_run(run, wrapper, compiled)
            return
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
    settings = {role: ({"class": run.class_path(role), "args": run.settings(role)} if role in run.spec else None)
                for role in ("compiler", "runtime", "protocol", "board")}
    outputs_file = outputs_file_name(args.reportname)
    document = session_document(result, wrapper, dataset, args.split, compiled, run.class_path("runtime"),
                                collect_provenance(run.spec), board_info, args.run, settings, outputs_file)
    stats = document["performance"]["statistics"]
    overhead = document["protocol_overhead"]
    finish_run(output, args.reportname, document,
               f"{args.reportname}: accuracy {result.quality['accuracy']:.4f} on {result.quality['sample_count']} "
               f"{args.split} samples; board median {stats['median'] * 1e3:.3f} ms, p99 {stats['p99'] * 1e3:.3f} ms; "
               f"protocol overhead median {overhead['median_s'] * 1e6:.1f} us; "
               f"whole session {document['session']['samples_per_second']:.0f} samples/s",
               arrays={outputs_file: result.outputs})


def _write_failed_run(run: ScenarioRun, wrapper: ModelWrapper, compiled: dict[str, Any]) -> Path:
    """The result of a run whose compilation failed (kind failed_run): its identity and the error, no
    measurements, so the report shows the run as a failed row beside the others."""
    from edge_ai_lib.core.results import SCHEMA_VERSION, write_result

    args = run.options
    settings = {role: ({"class": run.class_path(role), "args": run.settings(role)} if role in run.spec else None)
                for role in ("compiler", "runtime", "protocol", "board")}
    board_name = (run.settings("board").get("board_name") if "board" in run.spec else None) or "?"
    identity, _ = run_identity(args.run, {}, board_name, settings)
    document = {"schema_version": SCHEMA_VERSION, "kind": "failed_run", "model": wrapper.describe(),
                "provenance": collect_provenance(run.spec), "run": identity, "failure": compiled["failure"],
                "compiled_model": compiled}
    path = write_result(Path(args.output) / f"{args.reportname}.json", document)
    print(f"{args.reportname}: not run, its {compiled['failure']['stage']} failed: {compiled['failure']['error']}",
          file=sys.stderr)
    print(f"wrote {path} (a failed run)")
    return path


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


def _missed_deadline(error: BaseException) -> bool:
    """Whether a protocol error comes from a reply that did not arrive in time (the transport's
    AnswerDeadlineError, itself or among its causes)."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, AnswerDeadlineError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _run_on_board(run: ScenarioRun, board: Board, wrapper, dataset, model_bytes: bytes) -> SessionResult:
    """Start the server on `board` with the protocol's and runtime's settings (as data), run the session."""
    server_spec = {role: {"class": run.class_path(role), "args": run.settings(role)} for role in ("protocol", "runtime")}
    board.deploy(server_spec)
    address = board.start(server_spec)
    try:
        return _run_on_server(run, wrapper, dataset, model_bytes, None, address)
    except ProtocolError as error:
        status = board.exit_status()
        if status is None and _missed_deadline(error) and getattr(error, "position", None) is not None:
            declared = run.classes["protocol"].declared_arguments().get("timeout")
            seconds = run.settings("protocol").get("timeout", declared.default if declared else None)
            within = f" within {seconds:g} s" if isinstance(seconds, (int, float)) else ""
            raise BoardError(f"board '{board.name}' did not answer {error.request}{within} {error.position}: "
                             "its model hangs or is far slower than the deadline; the server is stopped and the "
                             "next run starts a fresh one (raise the protocol's timeout for slow models)") from error
        if status is None:
            raise type(error)(f"board '{board.name}': {error}{board.explain_failure(str(error))}") from error
        raise BoardError(f"the server of board '{board.name}' died (exit status {status}) {where_of(error)}; its "
                         f"log ({board.log_path}) ends with:\n{board.log_tail()}") from error


if __name__ == "__main__":
    sys.exit(run_scenario(main))
