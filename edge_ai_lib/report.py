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

from edge_ai_lib import decision, plots
from edge_ai_lib.core.agreement import EMULATED_NOTE
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
    "tuning_trials": "tuning trials measured for the compiled model (TVM MetaSchedule); empty: not tuned",
    "tuning_seconds": "how long that tuning took (made once, reused until the model or settings change)",
    "tuning_capped": "whether the tuning's time cap stopped it before its trial budget was spent",
    "cold_first_inference_ms": "the first, cold inference (left out of the statistics)",
    "protocol_overhead_median_ms": "host-side minus board-side time per batch: median",
    "reference_accuracy": "the framework model's own accuracy on this host (rule evaluate_model)",
    "accuracy_change_vs_framework": "accuracy minus the framework model's, on the same samples",
    "top1_agreement": "share of samples whose predicted class is the framework model's",
    "max_output_error": "largest absolute difference between the raw outputs and the framework model's",
    "failure": "why the run has no measurements (its compilation failed, say); empty for a measured run",
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
    def failed(self) -> bool:
        """A run that was not measured (kind failed_run): a row with its error and no figures."""
        return self.document.get("kind") == "failed_run"

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


@dataclass
class Reference:
    """A framework model evaluated on the host (inference_performance): what its variants are held to."""

    model: str
    path: Path
    document: dict[str, Any]

    @property
    def framework(self) -> str:
        """The framework and wrapper that ran it, e.g. "keras TensorFlowDigitsCNN"."""
        described = self.document.get("model") or {}
        return " ".join(part for part in (described.get("framework"), _short(described.get("wrapper"))) if part) \
            or "framework"


def reference_from_result(path: Path) -> Reference:
    """A framework reference, named by its result's `reference` section (the model's config key).

    Raises
    ------
    MeasurementsError
        The file is not an inference_performance result that names its model.
    """
    path = Path(path)
    document = read_result(path)
    model = (document.get("reference") or {}).get("model")
    if document["kind"] != "inference_performance" or not model:
        raise MeasurementsError(f"'{path}' is not a framework reference (an inference_performance result with "
                                "--reference MODEL_KEY): pass results/reference/MODEL/framework.json files")
    return Reference(model, path, document)


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
        if not run.failed:
            groups.setdefault((run.model, run.board), []).append(run)
    for key, members in groups.items():
        ordered = sorted(members, key=lambda r: r.document["performance"]["statistics"]["median"])
        best = ordered[0]
        _, high = best.document["performance"]["statistics"]["median_ci95"]
        tied = [r for r in ordered[1:] if r.document["performance"]["statistics"]["median_ci95"][0] <= high]
        verdicts[key] = {"fastest": names[id(best)], "tied": [names[id(r)] for r in tied], "count": len(members)}
    return verdicts


def summary_entry(run: Run, agreement: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's flat summary (see SUMMARY_FIELDS): numbers, strings, and None where the run has no value;
    `agreement` is the run's `decision.reference_agreement` where its framework reference is known."""
    document = run.document
    if run.failed:
        failure = document["failure"]
        entry = dict.fromkeys(SUMMARY_FIELDS)
        entry.update({"model": run.model, "compiler": run.compiler, "board": run.board, "threads": run.threads,
                      "failure": f"{failure['stage']} failed: {failure['error']}"})
        return entry
    stats = document["performance"]["statistics"]
    compiled = document.get("compiled_model") or {}
    tuning = compiled.get("tuning") or {}
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
        "tuning_trials": tuning.get("trials"), "tuning_seconds": tuning.get("seconds"),
        "tuning_capped": tuning.get("capped"),
        "cold_first_inference_ms": _milliseconds(document["performance"].get("cold_first_inference_s")),
        "protocol_overhead_median_ms": _milliseconds(overhead.get("median_s")),
        "reference_accuracy": None, "accuracy_change_vs_framework": None, "top1_agreement": None,
        "max_output_error": None,
        "failure": None,
    }
    if agreement is not None:
        entry.update(reference_accuracy=agreement["reference_accuracy"],
                     accuracy_change_vs_framework=agreement["accuracy_change"],
                     top1_agreement=agreement["top1_agreement"], max_output_error=agreement["max_output_error"])
    return entry


def summaries(runs: Sequence[Run], agreements: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
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
        entries[run.key] = summary_entry(run, (agreements or {}).get(run.key))
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
           summary_csv_path: Path | None = None, summary_json_path: Path | None = None,
           baseline_paths: Sequence[Path] = (), accuracy_tolerance: float = decision.ACCURACY_TOLERANCE,
           comparison_settings: dict[str, Any] | None = None, reference_paths: Sequence[Path] = (),
           onnx_grid_path: Path | None = None) -> Path:
    """Write the report for the given benchmark results, and the summary files when their paths are given.

    Images are embedded, so one file holds all. The page and the summaries are written as one step:
    all of them or none. With `baseline_paths` (an earlier run's results: directories or files), the
    page also shows each run's change since then (edge_ai_lib.core.comparison; `comparison_settings`
    are its thresholds and confidence). With `reference_paths` (the framework models evaluated on the host,
    rule evaluate_model), every variant is held to its framework model: accuracy change, top-1 agreement
    and largest output difference in the table, and the recommendation's accuracy bar is the framework's.
    With `onnx_grid_path` (onnx_conversion's support-grid.json), the page ends with the conversion grid.

    Raises
    ------
    MeasurementsError
        A result cannot be read, is not a board benchmark, or two results are the same run.
    """
    import jinja2

    runs = sorted((run_from_result(p) for p in result_paths),
                  key=lambda r: (r.model, r.board, r.threads or 0, r.compiler))
    references: dict[str, Reference] = {}
    for path in reference_paths:
        reference = reference_from_result(path)
        if reference.model in references:
            raise MeasurementsError(f"'{references[reference.model].path}' and '{path}' are both the framework "
                                    f"reference of {reference.model}: pass one per model")
        references[reference.model] = reference
    agreements = {run.key: decision.reference_agreement(run, references[run.model])
                  for run in runs if not run.failed and run.model in references}
    entries = summaries(runs, agreements)
    verdicts = fastest_verdicts(runs)
    names = variant_names(runs)
    comparison = None
    if baseline_paths:
        from edge_ai_lib.core import comparison as change

        baseline = [run_from_result(path) for path in change.result_files(baseline_paths)]
        comparison = change.compare_runs(baseline, runs, **(comparison_settings or {}))
    changes = comparison.by_key() if comparison else {}
    rows, details = [], []
    points = []
    failures = []
    for run in runs:
        document = run.document
        entry = entries[run.key]
        if run.failed:
            failures.append({**entry, "label": run.label, "anchor": run.anchor, "key": run.key})
            continue
        stats = document["performance"]["statistics"]
        runtime = document.get("runtime", {})
        size_bytes = entry["compiled_size_bytes"]
        emulated = bool((document.get("board") or {}).get("emulated"))  # an emulated board (boards.emulated)
        mark = _verdict_mark(names[id(run)], verdicts[(run.model, run.board)])
        row = {
            **entry, "label": run.label, "anchor": run.anchor, "key": run.key,
            "runtime": f"{runtime.get('runtime', '?')} {runtime.get('runtime_version', '')}".strip(),
            "ci_ms": [v * 1e3 for v in stats["median_ci95"]],
            "size_kib": None if size_bytes is None else size_bytes / 1024,
            "overhead_median_us": _scaled(entry["protocol_overhead_median_ms"], 1e3),
            "mark": (EMULATED_NOTE + (f"; {mark}" if mark else "")) if emulated else mark,
            "warnings": ([EMULATED_NOTE] if emulated else []) + decision.spread_warnings(
                document["performance"]["samples_s"]),
            "change": _change_text(changes.get(run.key)),
            "agreement": agreements.get(run.key),
        }
        rows.append(row)
        accuracy_low, accuracy_high = decision.accuracy_interval(row["accuracy"], row["sample_count"])
        points.append({"label": f"{run.model}/{run.compiler}/{run.threads_text}",
                       "latency": row["latency_median_ms"], "accuracy": row["accuracy"], "size": row["size_kib"],
                       "latency_ms": row["latency_median_ms"], "latency_low_ms": row["ci_ms"][0],
                       "latency_high_ms": row["ci_ms"][1], "accuracy_low": accuracy_low,
                       "accuracy_high": accuracy_high})
        images = {
            "Inference time over the run": plots.draw_latency_over_time(
                document["performance"]["samples_s"], run.label),
            "Inference time distribution": plots.draw_latency_histogram(
                document["performance"]["samples_s"], run.label),
            "Confusion matrix": plots.draw_confusion_matrix(
                document["quality"]["confusion_matrix"], document["quality"]["class_names"], run.label),
        }
        board_resources = document.get("board_resources") or {}
        if len(board_resources.get("samples") or []) >= decision.RESOURCE_PLOT_MIN_SAMPLES:
            images["Board CPU and memory"] = plots.draw_board_resources(board_resources["samples"], run.label)
        overhead = document.get("protocol_overhead") or {}
        details.append({
            **row, "images": {name: _image(figure) for name, figure in images.items()},
            "overhead_p99_us": _scaled(overhead.get("p99_s"), 1e6),
            "warmup": document["performance"]["warmup"]["count"],
            "resources": decision.resource_numbers(board_resources),
            "provenance": json.dumps({"run": document["run"], "compiled_model": document.get("compiled_model"),
                                      "runtime": runtime, "board": document.get("board"),
                                      "board_provenance": document.get("board_provenance"),
                                      "model": document["model"], "host_provenance": document["provenance"]},
                                     indent=2, default=str),
        })
    summary_images = {}
    if points:
        unit, factor = decision.time_unit([point["latency_high_ms"] for point in points])
        summary_images["Accuracy against latency"] = _image(plots.draw_pareto(
            points, unit, factor, "accuracy against latency: up and to the left is better"))
        sized = [point for point in points if point["size"] is not None]
        if sized:
            summary_images["Model size against latency"] = _image(plots.draw_tradeoff(
                sized, "latency", "size", "median latency [ms]", "compiled model size [KiB]", "size against latency"))
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters["number"] = _number
    environment.filters["in_unit"] = decision.format_in_unit
    environment.filters["duration"] = _duration
    environment.filters["percent"] = lambda value: MISSING if value is None else f"{value:.1%}"
    environment.filters["points"] = lambda value: MISSING if value is None else f"{value * 100:+.2f} pt"
    template = environment.from_string(resources.files("edge_ai_lib.resources").joinpath("report.html.j2").read_text())
    files = {}
    if summary_json_path is not None:
        files[Path(summary_json_path)] = summary_json(entries)
    if summary_csv_path is not None:
        files[Path(summary_csv_path)] = summary_csv(entries)
    onnx_grid_html = ""
    if onnx_grid_path is not None:
        from markupsafe import Markup

        from edge_ai_lib.core.onnxconversion import load_grid
        from edge_ai_lib.onnxconverters.grid import render_html

        onnx_grid_html = Markup(render_html(load_grid(Path(onnx_grid_path))))
    html = template.render(title=title, rows=rows, failures=failures, details=details, summary_images=summary_images, missing=MISSING,
                           onnx_grid_html=onnx_grid_html,
                           summary_files=[_relative(path, Path(output).parent) for path in files],
                           verdicts=[{"model": m, "board": b, **v} for (m, b), v in sorted(verdicts.items())],
                           recommendations=decision.recommendations(runs, names, accuracy_tolerance, references),
                           references=[_reference_row(reference) for _, reference in sorted(references.items())],
                           accuracy_tolerance=accuracy_tolerance, header=decision.header_facts(runs),
                           units=_column_units(rows), comparison=comparison,
                           comparison_rows=_comparison_rows(comparison),
                           comparison_note=_comparison_note(comparison))
    files = {Path(output): html, **files}
    with atomic_outputs(list(files), elsewhere="pass other output paths") as temporaries:
        for temporary, text in zip(temporaries, files.values()):
            temporary.write_text(text, encoding="utf-8")
    return Path(output)


def _reference_row(reference: Reference) -> dict[str, Any]:
    document = reference.document
    return {"model": reference.model, "framework": reference.framework,
            "dataset": _short(document["dataset"].get("class")), "samples": document["quality"]["sample_count"],
            "accuracy": document["quality"]["accuracy"],
            "median_ms": _milliseconds(document["performance"]["statistics"]["median"])}


def _relative(path: Path, directory: Path) -> str:
    """`path` as the page names it: relative to the page's directory where it lies under it."""
    try:
        return str(Path(path).resolve().relative_to(directory.resolve()))
    except ValueError:
        return str(path)


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _column_units(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[str, float]]:
    """Per time column of the summary table, the unit its values read best in (µs, ms or s) and the factor
    from ms; the median, its interval, p90 and p99 share one unit so that they compare at a glance."""
    latency = [row[name] for row in rows for name in ("latency_median_ms", "latency_p90_ms", "latency_p99_ms")]
    return {"latency": decision.time_unit(latency),
            "load": decision.time_unit([row["load_time_ms"] for row in rows]),
            "cold": decision.time_unit([row["cold_first_inference_ms"] for row in rows]),
            "overhead": decision.time_unit([row["protocol_overhead_median_ms"] for row in rows])}


def _change_text(run: Any) -> str:
    """A run's change since the baseline as its table cell shows it, "" without a baseline."""
    if run is None:
        return ""
    if run.latency is None:
        return run.status
    latency = run.latency
    scope = "" if latency.between_runs or latency.verdict == "indistinguishable" else " (1 run a side)"
    text = f"{latency.ratio:.2f}x [{latency.ci[0]:.2f}, {latency.ci[1]:.2f}] {latency.verdict}{scope}"
    if run.accuracy.verdict != "indistinguishable":
        text += f"; accuracy {run.accuracy.change:+.2%} {run.accuracy.verdict}"
    return text + ("; REGRESSION" if run.regressions else "; unconfirmed" if run.unconfirmed else "")


def _comparison_note(comparison: Any) -> str:
    if comparison is None:
        return ""
    from edge_ai_lib.core.comparison import method_note

    return method_note(comparison)


def _comparison_rows(comparison: Any) -> list[dict[str, Any]]:
    if comparison is None:
        return []
    from edge_ai_lib.core.comparison import table_rows

    notes = {run.key: [*run.regressions, *run.unconfirmed, *run.warnings,
                       *(["differs in " + "; ".join(run.differences[:6])]
                                                           if run.differences else [])]
             for run in comparison.runs}
    return [{**row, "notes": notes[row["run"]], "regressed": row["gate"] == "REGRESSION",
             "unconfirmed": row["gate"] == "unconfirmed"} for row in table_rows(comparison)]


def _duration(value_ms: float | None) -> str:
    """A time given in ms in the unit that reads best (21.3 µs, 1.25 ms), "—" where missing."""
    from edge_ai_lib.core.comparison import format_duration

    return MISSING if value_ms is None else format_duration(value_ms / 1e3)
