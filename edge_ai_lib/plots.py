"""PNG plots of a benchmark run (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency_over_time(samples_s: Sequence[float], path: Path, title: str) -> Path:
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
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_latency_histogram(samples_s: Sequence[float], path: Path, title: str) -> Path:
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
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: Path, title: str) -> Path:
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
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_run(document: dict, report_dir: Path, report_name: str) -> list[Path]:
    """The three standard plots of a result document; returns their paths."""
    report_dir = Path(report_dir)
    samples = document["performance"]["samples_s"]
    quality = document["quality"]
    return [
        plot_latency_over_time(samples, report_dir / f"{report_name}-inference-time.png",
                               f"{report_name}: inference time per call"),
        plot_latency_histogram(samples, report_dir / f"{report_name}-inference-time-histogram.png",
                               f"{report_name}: inference time distribution"),
        plot_confusion_matrix(quality["confusion_matrix"], quality["class_names"],
                              report_dir / f"{report_name}-confusion-matrix.png", f"{report_name}: confusion matrix"),
    ]


def plot_board_resources(samples: Sequence[dict], path: Path, title: str) -> Path:
    """CPU use and resident memory of the board's server over the run."""
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
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_tradeoff(points: Sequence[dict], x_key: str, y_key: str, x_label: str, y_label: str, path: Path,
                  title: str) -> Path:
    """Scatter of runs (e.g. accuracy against latency), one labelled point per run."""
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
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
