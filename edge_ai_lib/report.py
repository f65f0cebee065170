"""The HTML report and the summary files: every (model, compiler, board, threads) run, side by side.

A run is named by its result's own `run` section (the config keys and the threads), never by the
file's path. Beside the self-contained HTML page go `summary.json` (an object keyed by run id, flat
values, as `dvc metrics show` reads it) and `summary.csv` (the same, one row per run). A value a run
does not have (a board that did not report its load time, say) is null in the files and "—" in the
page, never 0.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from edge_ai_lib import plots
from edge_ai_lib.core.errors import MeasurementsError
from edge_ai_lib.core.files import atomic_outputs
from edge_ai_lib.core.results import read_result

MISSING = "—"

# The summary's columns, in order, with what each holds (times in milliseconds).
SUMMARY_FIELDS = {
    "model": "the model's config key (its wrapper's class name for a hand run without one)",
    "compiler": "the compiler's config key (its class name for a hand run without one)",
    "board": "the board's config key, or its own name",
    "threads": "threads the runtime ran on",
    "dataset": "the dataset's class",
    "split": "the evaluated split",
    "sample_count": "samples measured",
    "accuracy": "top-1 accuracy on those samples",
    "latency_median_ms": "board-side time of the runtime call per batch: median",
    "latency_p90_ms": "board-side time per batch: 90th percentile",
    "latency_p99_ms": "board-side time per batch: 99th percentile",
    "latency_mean_ms": "board-side time per batch: mean",
    "runtime_samples_per_second": "samples per second of the board's runtime calls alone",
    "session_samples_per_second": "samples per second of the whole session, end to end (host conversions, "
                                  "transfers and protocol included)",
    "compiled_size_bytes": "size of the compiled model",
    "load_time_ms": "time the board took to load the model",
    "cold_first_inference_ms": "the first, cold inference (left out of the statistics)",
    "protocol_overhead_median_ms": "host-side minus board-side time per batch: median",
}


def _short(class_path: str | None) -> str | None:
    return class_path.rpartition(".")[2] if class_path else None


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


@dataclass
class Run:
    """One benchmark result and the run it is: model, compiler and board (config keys) and threads."""

    model: str
    compiler: str
    board: str
    path: Path
    document: dict[str, Any]
    threads: int | None = None

    @property
    def threads_text(self) -> str:
        return f"t{self.threads}" if self.threads is not None else "t?"

    @property
    def key(self) -> str:
        """The run's id in the summary files, e.g. "keras-cnn/tflite-int8/local/t1"."""
        return "/".join((self.model, self.compiler, self.board, self.threads_text))

    @property
    def label(self) -> str:
        threads = "threads unknown" if self.threads is None else \
            f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        return f"{self.model} / {self.compiler} / {self.board} / {threads}"

    @property
    def anchor(self) -> str:
        return "run-" + "-".join((self.model, self.compiler, self.board, self.threads_text)).replace("/", "-")


def run_from_result(path: Path) -> Run:
    """A run named by its result's `run` section (read and checked against the schema).

    Raises
    ------
    MeasurementsError
        The file is not a board benchmark's result of this schema version.
    """
    path = Path(path)
    document = read_result(path)
    identity = document.get("run")
    if identity is None:
        raise MeasurementsError(f"result file '{path}' is a {document['kind']} result, which names no run: the "
                                "report compares board benchmarks (inference_client)")
    model = identity["model"] or _short(document["model"].get("wrapper")) or "?"
    compiler = identity["compiler"] or _short((document.get("compiled_model") or {}).get("compiler")) or "?"
    return Run(model, compiler, identity["board"], path, document, identity["threads"])


def _image(figure: Any) -> str:
    """A matplotlib figure as a data URI, so the report is one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(plots.png_bytes(figure)).decode()


def variant_names(runs: Sequence[Run]) -> dict[int, str]:
    """What tells a run apart from the others of its model and board: its compiler, and its thread
    count where those runs differ in it. Keyed by `id(run)`."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.model, run.board), []).append(run)
    names = {}
    for members in groups.values():
        several = len({run.threads for run in members}) > 1
        for run in members:
            names[id(run)] = f"{run.compiler} {run.threads_text}" if several else run.compiler
    return names


def fastest_verdicts(runs: Sequence[Run]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (model, board): the fastest variant by median latency, or the set whose 95% confidence
    intervals of the median overlap the fastest one's (then they are indistinguishable)."""
    names = variant_names(runs)
    verdicts = {}
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.model, run.board), []).append(run)
    for key, members in groups.items():
        ordered = sorted(members, key=lambda r: r.document["performance"]["statistics"]["median"])
        best = ordered[0]
        _, high = best.document["performance"]["statistics"]["median_ci95"]
        tied = [r for r in ordered[1:] if r.document["performance"]["statistics"]["median_ci95"][0] <= high]
        verdicts[key] = {"fastest": names[id(best)], "tied": [names[id(r)] for r in tied], "count": len(members)}
    return verdicts


def summary_entry(run: Run) -> dict[str, Any]:
    """A run's flat summary (see SUMMARY_FIELDS): numbers, strings, and None where the run has no value."""
    document = run.document
    stats = document["performance"]["statistics"]
    compiled = document.get("compiled_model") or {}
    overhead = document.get("protocol_overhead") or {}
    session = document.get("session") or {}
    dataset = document["dataset"]
    entry = {
        "model": run.model, "compiler": run.compiler, "board": run.board, "threads": run.threads,
        "dataset": _short(dataset.get("class")), "split": dataset.get("split"),
        "sample_count": document["quality"]["sample_count"],
        "accuracy": document["quality"]["accuracy"],
        "latency_median_ms": _milliseconds(stats["median"]), "latency_p90_ms": _milliseconds(stats["p90"]),
        "latency_p99_ms": _milliseconds(stats["p99"]), "latency_mean_ms": _milliseconds(stats["mean"]),
        "runtime_samples_per_second": stats["samples_per_second"],
        "session_samples_per_second": session.get("samples_per_second"),
        "compiled_size_bytes": compiled.get("size_bytes") or None,
        "load_time_ms": _milliseconds(compiled.get("load_time_s")),
        "cold_first_inference_ms": _milliseconds(document["performance"].get("cold_first_inference_s")),
        "protocol_overhead_median_ms": _milliseconds(overhead.get("median_s")),
    }
    return entry


def summaries(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """Every run's summary by run id, in the order of `runs`.

    Raises
    ------
    MeasurementsError
        Two results are the same run (same id): the summary could keep only one of them.
    """
    entries: dict[str, dict[str, Any]] = {}
    paths: dict[str, Path] = {}
    for run in runs:
        if run.key in entries:
            raise MeasurementsError(f"'{paths[run.key]}' and '{run.path}' are both the run {run.key}: pass each run's "
                                    "result once (results of one run made twice overwrite each other's place)")
        entries[run.key] = summary_entry(run)
        paths[run.key] = run.path
    return entries


def summary_json(entries: dict[str, dict[str, Any]]) -> str:
    """The summaries as JSON: an object keyed by run id, flat values, null where missing."""
    return json.dumps(entries, indent=2) + "\n"


def summary_csv(entries: dict[str, dict[str, Any]]) -> str:
    """The summaries as CSV: a `run` column (the id), then SUMMARY_FIELDS; an empty cell where missing."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["run", *SUMMARY_FIELDS], lineterminator="\n")
    writer.writeheader()
    for key, entry in entries.items():
        writer.writerow({"run": key, **{name: "" if value is None else value for name, value in entry.items()}})
    return buffer.getvalue()


def _number(value: Any, spec: str = "%.4f") -> str:
    """A number as the report shows it: formatted, or "—" where the run has none."""
    return MISSING if value is None else spec % value


def _verdict_mark(name: str, verdict: dict[str, Any]) -> str:
    if verdict["count"] < 2:
        return ""
    if name == verdict["fastest"]:
        return "fastest" if not verdict["tied"] else \
            "fastest (indistinguishable from " + ", ".join(verdict["tied"]) + ")"
    if name in verdict["tied"]:
        return "indistinguishable from the fastest"
    return ""


def render(result_paths: Sequence[Path], output: Path, title: str = "edge-ai-tester report",
           summary_csv_path: Path | None = None, summary_json_path: Path | None = None) -> Path:
    """Write the report for the given benchmark results, and the summary files when their paths are given.

    Images are embedded, so one file holds all. The page and the summaries are written as one step:
    all of them or none.

    Raises
    ------
    MeasurementsError
        A result cannot be read, is not a board benchmark, or two results are the same run.
    """
    import jinja2

    runs = sorted((run_from_result(p) for p in result_paths),
                  key=lambda r: (r.model, r.board, r.threads or 0, r.compiler))
    entries = summaries(runs)
    verdicts = fastest_verdicts(runs)
    names = variant_names(runs)
    rows, details = [], []
    points = []
    for run in runs:
        document = run.document
        entry = entries[run.key]
        stats = document["performance"]["statistics"]
        runtime = document.get("runtime", {})
        size_bytes = entry["compiled_size_bytes"]
        row = {
            **entry, "label": run.label, "anchor": run.anchor, "key": run.key,
            "runtime": f"{runtime.get('runtime', '?')} {runtime.get('runtime_version', '')}".strip(),
            "ci_ms": [v * 1e3 for v in stats["median_ci95"]],
            "size_kib": None if size_bytes is None else size_bytes / 1024,
            "overhead_median_us": _scaled(entry["protocol_overhead_median_ms"], 1e3),
            "mark": _verdict_mark(names[id(run)], verdicts[(run.model, run.board)]),
            "warnings": document["performance"]["warnings"],
        }
        rows.append(row)
        points.append({"label": f"{run.model}/{run.compiler}/{run.threads_text}",
                       "latency": row["latency_median_ms"], "accuracy": row["accuracy"], "size": row["size_kib"]})
        images = {
            "Inference time over the run": plots.draw_latency_over_time(
                document["performance"]["samples_s"], run.label),
            "Inference time distribution": plots.draw_latency_histogram(
                document["performance"]["samples_s"], run.label),
            "Confusion matrix": plots.draw_confusion_matrix(
                document["quality"]["confusion_matrix"], document["quality"]["class_names"], run.label),
            "Board CPU and memory": plots.draw_board_resources(
                document.get("board_resources", {}).get("samples", []), run.label),
        }
        overhead = document.get("protocol_overhead") or {}
        details.append({
            **row, "images": {name: _image(figure) for name, figure in images.items()},
            "overhead_p99_us": _scaled(overhead.get("p99_s"), 1e6),
            "warmup": document["performance"]["warmup"]["count"],
            "provenance": json.dumps({"run": document["run"], "compiled_model": document.get("compiled_model"),
                                      "runtime": runtime, "board": document.get("board"),
                                      "board_provenance": document.get("board_provenance"),
                                      "model": document["model"], "host_provenance": document["provenance"]},
                                     indent=2, default=str),
        })
    summary_images = {}
    if points:
        summary_images["Accuracy against latency"] = _image(plots.draw_tradeoff(
            points, "latency", "accuracy", "median latency [ms]", "accuracy", "accuracy against latency"))
        sized = [point for point in points if point["size"] is not None]
        if sized:
            summary_images["Model size against latency"] = _image(plots.draw_tradeoff(
                sized, "latency", "size", "median latency [ms]", "compiled model size [KiB]", "size against latency"))
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters["number"] = _number
    template = environment.from_string(resources.files("edge_ai_lib.resources").joinpath("report.html.j2").read_text())
    files = {}
    if summary_json_path is not None:
        files[Path(summary_json_path)] = summary_json(entries)
    if summary_csv_path is not None:
        files[Path(summary_csv_path)] = summary_csv(entries)
    html = template.render(title=title, rows=rows, details=details, summary_images=summary_images, missing=MISSING,
                           summary_files=[_relative(path, Path(output).parent) for path in files],
                           verdicts=[{"model": m, "board": b, **v} for (m, b), v in sorted(verdicts.items())])
    files = {Path(output): html, **files}
    with atomic_outputs(list(files), elsewhere="pass other output paths") as temporaries:
        for temporary, text in zip(temporaries, files.values()):
            temporary.write_text(text, encoding="utf-8")
    return Path(output)


def _relative(path: Path, directory: Path) -> str:
    """`path` as the page names it: relative to the page's directory where it lies under it."""
    try:
        return str(Path(path).resolve().relative_to(directory.resolve()))
    except ValueError:
        return str(path)


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor
