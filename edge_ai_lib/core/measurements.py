"""The versioned result JSON: raw timing samples, statistics derived from them, quality, provenance.

Statistics are always computed from the raw samples kept in the same document, never entered by hand.
Percentiles use numpy's default "linear" method (Hyndman & Fan type 7): for sorted samples x_0..x_{n-1}
the q-th percentile sits at position (n - 1) * q / 100, interpolated linearly between neighbours.
The standard deviation is the sample one (ddof=1).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_ai_lib.core.errors import MeasurementsError
from edge_ai_lib.core.files import atomic_write_text

SCHEMA_VERSION = 1
PERCENTILE_METHOD = "linear"
CV_WARNING_THRESHOLD = 0.10
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0

# Packages whose versions are recorded when installed: frameworks, converters, compilers, runtimes.
PROVENANCE_PACKAGES = (
    "edge_ai_lib", "numpy", "scipy", "scikit-learn", "tensorflow-cpu", "tensorflow", "keras", "torch",
    "onnx", "onnxruntime", "onnxscript", "onnxsim", "tf2onnx", "onnx2tf", "onnx2torch",
    "ai-edge-litert", "tflite-runtime", "apache-tvm", "apache-tvm-ffi", "psutil",
)


@dataclass(frozen=True)
class LatencyStatistics:
    """Summary of per-call times in seconds; `samples_per_second` counts samples, not calls."""

    count: int
    mean: float
    median: float
    p90: float
    p99: float
    std: float
    min: float
    max: float
    samples_per_second: float
    median_ci95: tuple[float, float]
    coefficient_of_variation: float

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["median_ci95"] = list(self.median_ci95)
        return data


def bootstrap_median_ci(samples: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median, seeded so reruns agree."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size == 1:
        return float(samples[0]), float(samples[0])
    rng = np.random.default_rng(seed)
    medians = np.empty(resamples)
    chunk = max(1, min(resamples, 4_000_000 // samples.size))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = rng.integers(0, samples.size, size=(stop - start, samples.size))
        medians[start:stop] = np.median(samples[picks], axis=1)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail], method=PERCENTILE_METHOD)
    return float(low), float(high)


def latency_statistics(samples_s: Sequence[float], batch_size: int = 1) -> LatencyStatistics:
    """Statistics of per-call latencies (seconds) for calls of `batch_size` samples each."""
    samples = np.asarray(samples_s, dtype=np.float64)
    if samples.size == 0:
        raise MeasurementsError("no timing samples were recorded: run at least one measured inference "
                                "(check --max-samples and the warm-up count)")
    mean = float(samples.mean())
    std = float(samples.std(ddof=1)) if samples.size > 1 else 0.0
    p50, p90, p99 = np.percentile(samples, [50, 90, 99], method=PERCENTILE_METHOD)
    return LatencyStatistics(
        count=int(samples.size), mean=mean, median=float(p50), p90=float(p90), p99=float(p99), std=std,
        min=float(samples.min()), max=float(samples.max()),
        samples_per_second=float(batch_size * samples.size / samples.sum()) if samples.sum() > 0 else float("inf"),
        median_ci95=bootstrap_median_ci(samples),
        coefficient_of_variation=std / mean if mean > 0 else 0.0,
    )


def spread_warnings(stats: LatencyStatistics, label: str = "inference time") -> list[str]:
    if stats.coefficient_of_variation > CV_WARNING_THRESHOLD:
        return [f"{label} varies a lot: coefficient of variation {stats.coefficient_of_variation:.1%} "
                f"> {CV_WARNING_THRESHOLD:.0%}; the machine may be busy or throttling: compare medians, "
                "rerun on a quiet machine or with more warm-up runs"]
    return []


@dataclass
class TimingRecord:
    """Raw per-call times of one run: the cold first call, warm-up calls and measured calls.

    The first call is always cold (allocation, lazy initialisation, caches) and is kept apart;
    the next `warmup_count` calls are warm-up; only the calls after them enter the statistics.
    """

    warmup_count: int
    batch_size: int = 1
    cold_first_s: float | None = None
    warmup_s: list[float] = field(default_factory=list)
    samples_s: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> bool:
        """Record one call's time; returns True when it was a measured (not cold/warm-up) call."""
        if self.cold_first_s is None:
            self.cold_first_s = float(seconds)
            return False
        if len(self.warmup_s) < self.warmup_count:
            self.warmup_s.append(float(seconds))
            return False
        self.samples_s.append(float(seconds))
        return True

    @property
    def in_warmup(self) -> bool:
        return self.cold_first_s is None or len(self.warmup_s) < self.warmup_count

    def to_dict(self) -> dict[str, Any]:
        stats = latency_statistics(self.samples_s, self.batch_size)
        return {
            "unit": "s",
            "batch_size": self.batch_size,
            "percentile_method": PERCENTILE_METHOD,
            "cold_first_inference_s": self.cold_first_s,
            "warmup": {"count": len(self.warmup_s), "samples_s": self.warmup_s,
                       "median_s": float(np.median(self.warmup_s)) if self.warmup_s else None},
            "samples_s": self.samples_s,
            "statistics": stats.to_dict(),
            "warnings": spread_warnings(stats),
        }


def classification_quality(probabilities: np.ndarray, truth: np.ndarray,
                           class_names: Sequence[str], top_k: Sequence[int] = (1, 3, 5)) -> dict[str, Any]:
    """Accuracy, top-k, per-class precision/recall/F1 and the confusion matrix (scikit-learn)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(truth).astype(np.int64).reshape(-1)
    if probabilities.ndim != 2 or probabilities.shape[0] != truth.shape[0]:
        raise MeasurementsError(
            f"predictions of shape {probabilities.shape} do not match {truth.shape[0]} labels: the model "
            "must return one score vector per sample"
        )
    labels = list(range(len(class_names)))
    if probabilities.shape[1] != len(labels):
        raise MeasurementsError(
            f"the model returns {probabilities.shape[1]} scores per sample but the dataset has "
            f"{len(labels)} classes: train the model for this dataset"
        )
    predictions = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predictions, labels=labels, zero_division=0)
    # Top-k by rank of the true class's score (scikit-learn's top_k_accuracy_score refuses
    # two-class problems whose labels are not all present).
    ranked = np.argsort(-probabilities, axis=1, kind="stable")
    top = {str(k): float((ranked[:, :k] == truth[:, None]).any(axis=1).mean())
           for k in top_k if k < len(labels)}
    return {
        "accuracy": float(accuracy_score(truth, predictions)),
        "top_k_accuracy": top,
        "class_names": list(class_names),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "macro_f1": float(np.mean(f1)),
        "confusion_matrix": confusion_matrix(truth, predictions, labels=labels).tolist(),
        "sample_count": int(truth.size),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor")) and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value and not value.isdigit():
                    return value
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def collect_provenance(arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where and with what a result was obtained: versions, CPU, OS, threads, arguments."""
    import psutil

    versions = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "python": platform.python_version(),
        "os": _os_release(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count_logical": psutil.cpu_count(logical=True),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "memory_total_bytes": psutil.virtual_memory().total,
        "thread_settings": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                       "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
                            if k in os.environ},
        "packages": versions,
        "git_commit": _git_commit(),
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in (arguments or {}).items()},
    }


def load_schema() -> dict[str, Any]:
    text = resources.files("edge_ai_lib.resources").joinpath("result.schema.json").read_text()
    return json.loads(text)


def validate_result(document: dict[str, Any]) -> None:
    """Check a result document against the schema; raise MeasurementsError naming the field."""
    import jsonschema

    try:
        jsonschema.validate(document, load_schema())
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise MeasurementsError(f"result does not follow schema version {SCHEMA_VERSION} at {where}: "
                                f"{error.message}") from error


def build_result(kind: str, model: dict[str, Any], dataset: dict[str, Any], quality: dict[str, Any],
                 timing: TimingRecord, provenance: dict[str, Any],
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    document = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "model": model,
        "dataset": dataset,
        "quality": quality,
        "performance": timing.to_dict(),
        "provenance": provenance,
    }
    if extra:
        document.update(extra)
    return document


def result_text(document: dict[str, Any]) -> str:
    """The JSON text of a result document, as `write_result` stores it."""
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def write_result(path: Path, document: dict[str, Any]) -> Path:
    """Validate, then write atomically (a crash or a full disk leaves the previous file, never half of one).

    Raises StorageError (one sentence naming the directory and the fix) when the file cannot be written.
    """
    validate_result(document)
    return atomic_write_text(path, result_text(document))


def read_result(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise MeasurementsError(f"result file '{path}' does not exist: run the benchmark first") from error
    except json.JSONDecodeError as error:
        raise MeasurementsError(f"result file '{path}' is not valid JSON ({error}): rerun the benchmark") \
            from error
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise MeasurementsError(f"result file '{path}' has schema version {version}, this edge_ai_lib reads "
                                f"{SCHEMA_VERSION}: rerun the benchmark with this version")
    validate_result(document)
    return document
