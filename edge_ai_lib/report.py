"""The HTML report: one self-contained file comparing every (model, compiler, board) run."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from edge_ai_lib import plots
from edge_ai_lib.core.files import atomic_write_text
from edge_ai_lib.core.results import read_result


@dataclass
class Run:
    model: str
    compiler: str
    board: str
    path: Path
    document: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.model} / {self.compiler} / {self.board}"

    @property
    def anchor(self) -> str:
        return "run-" + "-".join((self.model, self.compiler, self.board)).replace("/", "-")


def run_from_path(path: Path) -> Run:
    """A run named by its place in results/benchmarks/{model}/{compiler}/{board}.json."""
    path = Path(path)
    return Run(path.parent.parent.name, path.parent.name, path.stem, path, read_result(path))


def _image(figure: Any) -> str:
    """A matplotlib figure as a data URI, so the report is one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(plots.png_bytes(figure)).decode()


def fastest_verdicts(runs: Sequence[Run]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (model, board): the fastest variant by median latency, or the set whose 95% confidence
    intervals of the median overlap the fastest one's (then they are indistinguishable)."""
    verdicts = {}
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.model, run.board), []).append(run)
    for key, members in groups.items():
        ordered = sorted(members, key=lambda r: r.document["performance"]["statistics"]["median"])
        best = ordered[0]
        _, high = best.document["performance"]["statistics"]["median_ci95"]
        tied = [r for r in ordered[1:] if r.document["performance"]["statistics"]["median_ci95"][0] <= high]
        verdicts[key] = {"fastest": best.compiler, "tied": [r.compiler for r in tied], "count": len(members)}
    return verdicts


def render(result_paths: Sequence[Path], output: Path, title: str = "edge-ai-tester report") -> Path:
    """Write the report for the given benchmark results; images are embedded, so one file holds all."""
    import jinja2

    runs = sorted((run_from_path(p) for p in result_paths), key=lambda r: (r.model, r.board, r.compiler))
    verdicts = fastest_verdicts(runs)
    rows, details = [], []
    points = []
    for run in runs:
        document = run.document
        stats = document["performance"]["statistics"]
        compiled = document.get("compiled_model", {})
        runtime = document.get("runtime", {})
        verdict = verdicts[(run.model, run.board)]
        if verdict["count"] < 2:
            mark = ""
        elif run.compiler == verdict["fastest"]:
            mark = "fastest" if not verdict["tied"] else "fastest (indistinguishable from " + \
                ", ".join(verdict["tied"]) + ")"
        elif run.compiler in verdict["tied"]:
            mark = "indistinguishable from the fastest"
        else:
            mark = ""
        row = {
            "label": run.label, "anchor": run.anchor, "model": run.model, "compiler": run.compiler,
            "board": run.board, "runtime": f"{runtime.get('runtime', '?')} {runtime.get('runtime_version', '')}",
            "threads": runtime.get("num_threads"),
            "accuracy": document["quality"]["accuracy"],
            "median_ms": stats["median"] * 1e3, "p90_ms": stats["p90"] * 1e3, "p99_ms": stats["p99"] * 1e3,
            "ci_ms": [v * 1e3 for v in stats["median_ci95"]],
            "samples_per_second": stats["samples_per_second"],
            "size_kib": (compiled.get("size_bytes") or document["model"]["size_bytes"]) / 1024,
            "load_ms": (compiled.get("load_time_s") or 0) * 1e3,
            "mark": mark, "warnings": document["performance"]["warnings"],
        }
        rows.append(row)
        points.append({"label": f"{run.model}/{run.compiler}", "latency": row["median_ms"],
                       "accuracy": row["accuracy"], "size": row["size_kib"]})
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
        overhead = document.get("protocol_overhead", {})
        details.append({
            **row, "images": {name: _image(figure) for name, figure in images.items()},
            "overhead_median_us": overhead.get("median_s", 0) * 1e6 if overhead else None,
            "overhead_p99_us": overhead.get("p99_s", 0) * 1e6 if overhead else None,
            "cold_ms": (document["performance"]["cold_first_inference_s"] or 0) * 1e3,
            "warmup": document["performance"]["warmup"]["count"],
            "samples": document["dataset"].get("evaluated_sample_count", document["dataset"]["sample_count"]),
            "split": document["dataset"]["split"],
            "provenance": json.dumps({"compiled_model": compiled, "runtime": runtime,
                                      "board": document.get("board"), "model": document["model"],
                                      "provenance": document["provenance"]}, indent=2, default=str),
        })
    summary_images = {}
    if points:
        summary_images = {
            "Accuracy against latency": _image(plots.draw_tradeoff(
                points, "latency", "accuracy", "median latency [ms]", "accuracy", "accuracy against latency")),
            "Model size against latency": _image(plots.draw_tradeoff(
                points, "latency", "size", "median latency [ms]", "compiled model size [KiB]",
                "size against latency")),
        }
    template = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
        resources.files("edge_ai_lib.resources").joinpath("report.html.j2").read_text())
    html = template.render(title=title, rows=rows, details=details, summary_images=summary_images,
                           verdicts=[{"model": m, "board": b, **v} for (m, b), v in sorted(verdicts.items())])
    return atomic_write_text(output, html, elsewhere="pass another output path")
