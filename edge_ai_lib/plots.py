"""PNG plots of a benchmark run (matplotlib, headless), and a run's plots-then-result outputs.

Every PNG is written through a temporary in its own directory and renamed into place when complete,
so a full disk or Ctrl-C never leaves a truncated image.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence

import numpy as np

from edge_ai_lib.core.files import atomic_output, atomic_outputs
from edge_ai_lib.core.results import result_text, validate_result


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_latency_over_time(samples_s: Sequence[float], title: str) -> Any:
    """Figure of per-call time in call order with the median: shows drift, throttling and outliers."""
    plt = _pyplot()
    values = np.asarray(samples_s) * 1e3
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    ax.plot(np.arange(1, values.size + 1), values, linewidth=0.8, color="#1f77b4")
    median = float(np.median(values))
    ax.axhline(median, color="#d62728", linestyle="--", linewidth=1, label=f"median {median:.3f} ms")
    ax.set_xlabel("inference #")
    ax.set_ylabel("time [ms]")
    ax.set_title(title)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def draw_latency_histogram(samples_s: Sequence[float], title: str) -> Any:
    """Figure of the distribution of per-call times, p50 and p99 marked."""
    plt = _pyplot()
    values = np.asarray(samples_s) * 1e3
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.hist(values, bins=min(60, max(10, values.size // 10)), color="#1f77b4", edgecolor="white")
    for q, style in ((50, "--"), (99, ":")):
        value = np.percentile(values, q)
        ax.axvline(value, color="#d62728", linestyle=style, linewidth=1, label=f"p{q} {value:.3f} ms")
    ax.set_xlabel("time [ms]")
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def draw_confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str) -> Any:
    """Figure of the confusion matrix, each row normalised by its true class's count."""
    plt = _pyplot()
    values = np.asarray(matrix, dtype=np.float64)
    totals = values.sum(axis=1, keepdims=True)
    normalised = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    size = max(4.0, 0.35 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7 if len(class_names) > 12 else 9)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7 if len(class_names) > 12 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(class_names) <= 12:
        for (i, j), count in np.ndenumerate(values):
            ax.text(j, i, int(count), ha="center", va="center", fontsize=8,
                    color="white" if normalised[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    fig.tight_layout()
    return fig


def draw_board_resources(samples: Sequence[dict], title: str) -> Any:
    """Figure of the board server's CPU use and resident memory over the run."""
    plt = _pyplot()
    fig, cpu_axis = plt.subplots(figsize=(8, 3.2), dpi=100)
    if samples:
        times = [s["t"] for s in samples]
        cpu_axis.plot(times, [s["cpu_percent"] for s in samples], color="#1f77b4", linewidth=1, marker=".",
                      label="CPU %")
        memory_axis = cpu_axis.twinx()
        memory_axis.plot(times, [s["rss_bytes"] / 2**20 for s in samples], color="#ff7f0e", linewidth=1,
                         marker=".", label="RSS MiB")
        memory_axis.set_ylabel("resident memory [MiB]")
    else:
        cpu_axis.text(0.5, 0.5, "no samples (run shorter than the sampling interval)", ha="center",
                      transform=cpu_axis.transAxes)
    cpu_axis.set_xlabel("time since model load [s]")
    cpu_axis.set_ylabel("CPU [%]")
    cpu_axis.set_title(title)
    fig.tight_layout()
    return fig


def draw_tradeoff(points: Sequence[dict], x_key: str, y_key: str, x_label: str, y_label: str, title: str) -> Any:
    """Figure scattering runs (e.g. accuracy against latency), one labelled point per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for point in points:
        ax.scatter(point[x_key], point[y_key], s=40)
        ax.annotate(point["label"], (point[x_key], point[y_key]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def draw_pareto(points: Sequence[dict], unit: str, factor: float, title: str) -> Any:
    """Accuracy against median latency, one marker per run with its 95% intervals as error bars, a legend
    naming each run, and the Pareto front (runs no other run beats on both) joined by a line.

    Each point holds label, latency_ms, latency_low_ms, latency_high_ms, accuracy, accuracy_low,
    accuracy_high; `unit` and `factor` (from ms) set the latency axis. The latency axis starts at 0 and
    the accuracy axis spans at least 10 points, so that one sample in a few hundred does not look like
    a cliff.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    markers = "osD^vP*Xh<>p"
    colours = plt.get_cmap("tab10")
    for index, point in enumerate(points):
        x = point["latency_ms"] * factor
        ax.errorbar(x, point["accuracy"],
                    xerr=[[x - point["latency_low_ms"] * factor], [point["latency_high_ms"] * factor - x]],
                    yerr=[[point["accuracy"] - point["accuracy_low"]], [point["accuracy_high"] - point["accuracy"]]],
                    fmt=markers[index % len(markers)], color=colours(index % 10), markersize=7, capsize=3,
                    linewidth=1, label=point["label"])
    front = sorted((p for p in points if not any(
        (o["latency_ms"] <= p["latency_ms"] and o["accuracy"] >= p["accuracy"])
        and (o["latency_ms"] < p["latency_ms"] or o["accuracy"] > p["accuracy"]) for o in points)),
        key=lambda p: p["latency_ms"])
    if len(front) > 1:
        ax.plot([p["latency_ms"] * factor for p in front], [p["accuracy"] for p in front], color="#888888",
                linestyle="--", linewidth=1, zorder=0, label="Pareto front")
    high = max(p["latency_high_ms"] for p in points) * factor
    ax.set_xlim(0, high * 1.1 if high > 0 else 1)
    low = min(p["accuracy_low"] for p in points)
    bottom = max(0.0, min(low - 0.02, 0.9))
    ax.set_ylim(bottom, 1.0 + (1.0 - bottom) * 0.02)
    ax.set_xlabel(f"median latency per call [{unit}] (95% CI)", fontsize=11)
    ax.set_ylabel("accuracy (95% CI)", fontsize=11)
    ax.set_title(title, fontsize=12)
    ax.tick_params(labelsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def _write_png(fig: Any, target: Path | IO[bytes]) -> None:
    """Save `fig` as PNG into a temporary file or a buffer, then close it.

    The format is given explicitly: temporary names need not end in .png.
    """
    try:
        fig.savefig(target, format="png")
    finally:
        _pyplot().close(fig)


def png_bytes(fig: Any) -> bytes:
    """`fig` as PNG bytes, without touching the disk (e.g. to embed in a report); closes the figure."""
    buffer = io.BytesIO()
    _write_png(fig, buffer)
    return buffer.getvalue()


def save_figure(fig: Any, path: Path) -> Path:
    """Write `fig` as PNG at `path` atomically (never half an image) and close the figure."""
    try:
        with atomic_output(path) as temporary:
            fig.savefig(temporary, format="png")
    finally:
        _pyplot().close(fig)
    return Path(path)


def _run_figures(document: dict, report_dir: Path, report_name: str) -> list[tuple[Path, Callable[[], Any]]]:
    """The standard plots of a result document: (file, function drawing its figure) pairs."""
    samples = document["performance"]["samples_s"]
    quality = document["quality"]
    return [
        (report_dir / f"{report_name}-inference-time.png",
         lambda: draw_latency_over_time(samples, f"{report_name}: inference time per call")),
        (report_dir / f"{report_name}-inference-time-histogram.png",
         lambda: draw_latency_histogram(samples, f"{report_name}: inference time distribution")),
        (report_dir / f"{report_name}-confusion-matrix.png",
         lambda: draw_confusion_matrix(quality["confusion_matrix"], quality["class_names"],
                                        f"{report_name}: confusion matrix")),
    ]


def write_run_outputs(output_dir: Path, name: str, document: dict,
                      arrays: Mapping[str, np.ndarray] | None = None) -> tuple[Path, list[Path]]:
    """Write a run's plots and arrays, then its result JSON `output_dir/name.json`, as one step.

    The result file is what the workflow (and a reader) takes as proof that the run succeeded, so it
    appears last, only once every plot and array is in place. Everything is written into temporaries
    first: on any failure (schema, full disk, Ctrl-C) none of this run's files is left and the
    previous run's files stay as they were. Returns the result's path and the plots' paths.

    Parameters
    ----------
    arrays : Mapping[str, np.ndarray] | None
        Arrays to keep beside the result, by file name in `output_dir` (e.g. "NAME-outputs.npy"),
        written with `numpy.save` (no pickles).

    Raises
    ------
    MeasurementsError
        The document does not follow the result schema (checked before anything is drawn).
    StorageError
        A file could not be written (e.g. no space left), in one sentence naming the directory.
    """
    validate_result(document)
    output_dir = Path(output_dir)
    figures = _run_figures(document, output_dir, name)
    result_path = output_dir / f"{name}.json"
    plot_paths = [path for path, _ in figures]
    arrays = dict(arrays or {})
    array_paths = [output_dir / file_name for file_name in arrays]
    with atomic_outputs([*plot_paths, *array_paths, result_path]) as temporaries:
        for temporary, (_, draw) in zip(temporaries, figures):
            _write_png(draw(), temporary)
        for temporary, array in zip(temporaries[len(figures):], arrays.values()):
            with open(temporary, "wb") as handle:
                np.save(handle, np.asarray(array), allow_pickle=False)
        with open(temporaries[-1], "w", encoding="utf-8") as handle:
            handle.write(result_text(document))
    return result_path, plot_paths
