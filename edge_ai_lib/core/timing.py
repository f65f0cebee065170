"""Raw per-call times of a run and the statistics derived from them.

Statistics are always computed from the raw samples, never entered by hand, so a reader can recompute
them from the result file. Percentiles use numpy's default "linear" method (Hyndman & Fan type 7): for
sorted samples x_0..x_{n-1} the q-th percentile sits at position (n - 1) * q / 100, interpolated linearly
between neighbours. The standard deviation is the sample one (ddof=1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edge_ai_lib.core.errors import MeasurementsError

PERCENTILE_METHOD = "linear"
CV_WARNING_THRESHOLD = 0.10
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class LatencyStatistics:
    """Summary of per-call times in seconds; `samples_per_second` counts samples, not calls.

    Frozen because it is derived: to change it, change the samples it was computed from.
    """

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
        """The statistics as JSON-ready data (the interval as a list, as JSON has no tuples)."""
        data = dict(self.__dict__)
        data["median_ci95"] = list(self.median_ci95)
        return data


def bootstrap_median_ci(samples: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median.

    Latencies are skewed and not normal, so the interval is resampled rather than assumed; the seed
    is fixed so that rerunning the statistics on the same samples gives the same interval.

    Parameters
    ----------
    samples : np.ndarray
        Per-call times, at least one.
    resamples : int
        Bootstrap resamples; more narrows the interval's own noise.
    seed : int
        Seed of the resampling.
    confidence : float
        Coverage of the interval, e.g. 0.95.

    Returns
    -------
    tuple[float, float]
        The interval's low and high ends; a point for a single sample.
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size == 1:
        return float(samples[0]), float(samples[0])
    rng = np.random.default_rng(seed)
    medians = np.empty(resamples)
    chunk = max(1, min(resamples, 4_000_000 // samples.size))  # bounds the memory of one resampling step
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = rng.integers(0, samples.size, size=(stop - start, samples.size))
        medians[start:stop] = np.median(samples[picks], axis=1)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail], method=PERCENTILE_METHOD)
    return float(low), float(high)


def latency_statistics(samples_s: Sequence[float], batch_size: int = 1) -> LatencyStatistics:
    """Statistics of per-call latencies for calls of `batch_size` samples each.

    Parameters
    ----------
    samples_s : Sequence[float]
        Measured per-call times in seconds (no cold or warm-up calls).
    batch_size : int
        Samples per call, so that throughput counts samples and not calls.

    Raises
    ------
    MeasurementsError
        No samples: every call was cold or warm-up, so there is nothing to summarise.
    """
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
    """Warnings to print and store when the times spread too much to be trusted as they are.

    A busy or throttling machine shows as a high coefficient of variation; the reader is told so
    instead of being handed a mean that describes no single run.

    Parameters
    ----------
    stats : LatencyStatistics
        The statistics to judge.
    label : str
        What was timed, as the warning names it.

    Returns
    -------
    list[str]
        One sentence per problem, each with what to do; empty when the spread is acceptable.
    """
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
    All three are kept raw so that a reader can see what was excluded and why.
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
        """Whether the next call would still be cold or warm-up, i.e. not enter the statistics."""
        return self.cold_first_s is None or len(self.warmup_s) < self.warmup_count

    def to_dict(self) -> dict[str, Any]:
        """The record as a result's `performance` section: raw times, statistics and warnings.

        Raises
        ------
        MeasurementsError
            No call was measured (see `latency_statistics`).
        """
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
