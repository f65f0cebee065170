"""Did a change make a run faster or slower, more or less accurate? Two result sets, run by run.

Runs are matched by their identity (model, compiler, board, threads: the results' `run` sections).
A side may hold several results of one run (repeats: the workflow rerun with `--forcerun
benchmark_board`, each copy of results/benchmarks given as one more directory of that side). For each
matched run:

- **between runs**, where a side has two or more repeats: the machine changes between runs (other
  work lands on the core for a whole run, caches and frequencies settle differently), so one run's
  samples, however many, say nothing of the next run. Each run's median is one observation: the
  ratio is that of the geometric means of the run medians, and its interval and p-value come from
  Welch's t on their logarithms (with one run on a side, the other side's spread stands for both:
  the A/A spread measured on that side). Within-run noise is inside each median's run-to-run spread.
  See `between_run_ratio`.
- **within one run**, with a single run a side: the interval below holds for that pair of runs only.
  The verdict says that between-run variation is unmeasured, and the gate does not fail on it
  (`gate_single_runs` makes it).

- **latency** within a run: the ratio of the board-side medians, new / base, with a confidence interval that holds
  for timing series, which drift (clocks, caches, other work on the machine) and are autocorrelated:
  an i.i.d. resample treats neighbouring samples as independent, makes the interval too narrow and
  flags unchanged runs. Each run is cut into 8 batches of consecutive samples; the spread of the
  batch medians (of log-times) carries the dependence and the drift, and Student's t with Welch's
  degrees of freedom accounts for there being few batches (the method of batch means, here with
  medians). A circular block bootstrap with blocks chosen from the series' own autocorrelation
  (Politis & White 2004, corrected by Patton, Politis & White 2009) is kept as an alternative: on
  strongly autocorrelated series it covered less than the batch medians (see `median_ratio`).
- **accuracy**: both runs saw the same samples in the same order, so they are compared sample by
  sample: the samples one run got right and the other wrong decide (McNemar's exact test, a binomial
  test on those discordant samples, with Agresti & Min's interval for paired proportions; see
  `accuracy_change`).
- **verdicts** (faster / slower / indistinguishable; better / worse / indistinguishable) are
  corrected for the number of runs compared, by Holm's step-down method on each family (latency,
  accuracy) separately, so that the chance of any false flag over the whole comparison stays at
  1 - confidence.
- a run **regresses** (and the comparison scenario exits non-zero) when it is significantly slower
  between runs and its ratio exceeds 1 + the latency threshold, or significantly less accurate by more
  than the accuracy threshold, or it was measured in the base but failed in the new set. A slowdown
  seen within a single pair of runs is reported as unconfirmed.

Nothing here reads files or imports a framework: runs come in as (key, document, path) objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import numpy as np

from edge_ai_lib.core.errors import MeasurementsError

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
BATCHES = 8
DEFAULT_SEED = 0
DEFAULT_LATENCY_THRESHOLD = 0.10
DEFAULT_ACCURACY_THRESHOLD = 0.01
CORRECTION = "Holm"
RESULT_KINDS = ("inference_client", "failed_run")
# Host facts whose difference can explain a change in speed by itself.
PROVENANCE_FIELDS = ("cpu", "cpu_count_logical", "cpu_count_physical", "machine", "os", "kernel", "python",
                     "cpu_governor", "hostname", "thread_settings")


# -- statistics ----------------------------------------------------------------------------------

def _flat_top(t: np.ndarray) -> np.ndarray:
    """The trapezoidal flat-top lag window of Politis & Romano: 1 to |t| = 1/2, then down to 0 at 1."""
    t = np.abs(t)
    return np.where(t <= 0.5, 1.0, np.where(t <= 1.0, 2.0 * (1.0 - t), 0.0))


def automatic_block_length(samples: Sequence[float]) -> int:
    """Block length for a circular block bootstrap of `samples`, from their own autocorrelation.

    Politis & White (2004), as corrected by Patton, Politis & White (2009): the lag after which the
    autocorrelation stays insignificant sets the bandwidth M of a flat-top window; the optimal block
    length is (2 G^2 / D)^(1/3) n^(1/3) with G = sum of lambda(k/M) |k| R(k) and D = 4/3 g(0)^2,
    g(0) = sum of lambda(k/M) R(k). Clipped to [1, n / 3] so that a resample holds several blocks.

    Returns
    -------
    int
        1 for a series without dependence (the ordinary bootstrap) or too short to tell.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.size
    if n < 8:
        return 1
    x = x - x.mean()
    variance = float(x @ x) / n
    if variance <= 0.0:
        return 1
    patience = max(5, math.ceil(math.sqrt(math.log10(n))))
    max_lag = min(n - 1, math.ceil(math.sqrt(n)) + patience)
    autocovariance = np.array([float(x[: n - k] @ x[k:]) / n for k in range(max_lag + 1)])
    correlation = np.abs(autocovariance / variance)
    bound = 2.0 * math.sqrt(math.log10(n) / n)
    cut = max_lag - patience
    for m in range(0, max_lag - patience + 1):
        if np.all(correlation[m + 1: m + 1 + patience] < bound):
            cut = m
            break
    bandwidth = min(max(2 * cut, 1), max_lag)
    lags = np.arange(-bandwidth, bandwidth + 1)
    weights = _flat_top(lags / bandwidth) * autocovariance[np.abs(lags)]
    g_total = float(np.sum(weights * np.abs(lags)))
    g_zero = float(np.sum(weights))
    if g_zero <= 0.0 or g_total == 0.0:
        return 1
    optimal = (2.0 * g_total ** 2 / (4.0 / 3.0 * g_zero ** 2)) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    return int(min(max(1, math.ceil(optimal)), max(1, n // 3)))


def block_bootstrap_medians(samples: Sequence[float], block_length: int, resamples: int,
                            rng: np.random.Generator) -> np.ndarray:
    """Medians of `resamples` circular block bootstrap resamples of `samples`.

    Each resample is the series cut at random starts into blocks of `block_length` neighbouring samples
    (wrapping around the end, so every sample is equally likely), laid end to end to the original
    length. A block length of 1 is the ordinary (i.i.d.) bootstrap.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.size
    block_length = max(1, min(int(block_length), n))
    blocks = math.ceil(n / block_length)
    offsets = np.arange(block_length)
    medians = np.empty(resamples)
    chunk = max(1, min(resamples, 4_000_000 // (blocks * block_length)))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        starts = rng.integers(0, n, size=(stop - start, blocks))
        picks = ((starts[:, :, None] + offsets) % n).reshape(stop - start, -1)[:, :n]
        medians[start:stop] = np.median(x[picks], axis=1)
    return medians


@dataclass(frozen=True)
class LatencyChange:
    """New / base ratio of the median per-call time, with its interval and its (two-sided) p-value."""

    base_median_s: float
    new_median_s: float
    ratio: float
    ci: tuple[float, float]
    p_value: float
    method: str
    p_adjusted: float | None = None
    verdict: str | None = None
    base_runs: int = 1
    new_runs: int = 1
    between_run_sd: float | None = None

    @property
    def between_runs(self) -> bool:
        """Whether the interval holds the variation between runs (a side had repeats), or only that within
        one pair of runs."""
        return self.between_run_sd is not None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["ci"] = list(self.ci)
        data["between_runs"] = self.between_runs
        return data


def between_run_ratio(base_medians_s: Sequence[float], new_medians_s: Sequence[float],
                      confidence: float = DEFAULT_CONFIDENCE) -> LatencyChange:
    """New / base ratio from repeated runs: each run's median is one observation.

    Why: on a shared or throttling machine two runs of one unchanged variant differ by more than either
    run's samples can show (the A/A experiment in the README: ratios of 0.8-1.5 between consecutive
    reruns, with within-run intervals a few percent wide). The spread of run medians holds both the
    within-run noise of each median and the variation between runs.

    The ratio is that of the geometric means of the run medians; its interval and p-value come from
    Student's t on the log medians: Welch's with its degrees of freedom when both sides have two runs
    or more; with one run on a side, the other side's spread stands for both (the single run is judged
    against the A/A spread measured on the other side), with that side's runs - 1 degrees of freedom.

    Raises
    ------
    MeasurementsError
        Neither side has two runs (nothing measures the variation between runs), or a median is not
        a positive time.
    """
    from scipy.stats import t as student

    base, new = np.asarray(base_medians_s, dtype=np.float64), np.asarray(new_medians_s, dtype=np.float64)
    if max(base.size, new.size) < 2 or min(base.size, new.size) < 1:
        raise MeasurementsError("the variation between runs needs two runs or more on one side: give the result "
                                "sets of repeated runs (e.g. --baseline base-1/ base-2/ base-3/)")
    if base.min() <= 0 or new.min() <= 0:
        raise MeasurementsError("a run to compare has a median time of 0 or less: the clock is broken; rerun it")
    log_base, log_new = np.log(base), np.log(new)
    log_ratio = float(log_new.mean() - log_base.mean())
    ratio = math.exp(log_ratio)
    if base.size >= 2 and new.size >= 2:
        base_var, new_var = log_base.var(ddof=1) / base.size, log_new.var(ddof=1) / new.size
        terms = base_var ** 2 / (base.size - 1) + new_var ** 2 / (new.size - 1)
        freedom = (base_var + new_var) ** 2 / terms if terms > 0 else float(base.size + new.size - 2)
        error = math.sqrt(base_var + new_var)
        pooled = (log_base.var(ddof=1) * (base.size - 1) + log_new.var(ddof=1) * (new.size - 1)) / \
            (base.size + new.size - 2)
        method = f"Welch t on log run medians ({base.size} base runs, {new.size} new)"
    else:
        measured = log_base if base.size >= 2 else log_new
        pooled = float(measured.var(ddof=1))
        error = math.sqrt(pooled * (1 / base.size + 1 / new.size))
        freedom = float(measured.size - 1)
        side = "base" if base.size >= 2 else "new"
        method = (f"t on log run medians ({base.size} base runs, {new.size} new; the single run judged against "
                  f"the spread of the {side} runs)")
    spread = math.sqrt(pooled)
    geometric_base, geometric_new = math.exp(log_base.mean()), math.exp(log_new.mean())
    if error == 0.0:
        return LatencyChange(geometric_base, geometric_new, ratio, (ratio, ratio), 1.0 if log_ratio == 0 else 0.0,
                             method, base_runs=base.size, new_runs=new.size, between_run_sd=spread)
    quantile = float(student.ppf(1 - (1 - confidence) / 2, freedom))
    p_value = float(2 * student.sf(abs(log_ratio) / error, freedom))
    return LatencyChange(geometric_base, geometric_new, ratio,
                         (math.exp(log_ratio - quantile * error), math.exp(log_ratio + quantile * error)),
                         p_value, method, base_runs=base.size, new_runs=new.size, between_run_sd=spread)


def batch_count(samples: int) -> int:
    """How many consecutive batches a series is cut into for `median_ratio`: 8, fewer for short series."""
    return max(2, min(BATCHES, samples // 2))


def _batch_medians(log_times: np.ndarray) -> np.ndarray:
    return np.array([np.median(batch) for batch in np.array_split(log_times, batch_count(log_times.size))])


def median_ratio(base_s: Sequence[float], new_s: Sequence[float], confidence: float = DEFAULT_CONFIDENCE,
                 method: str = "batch-medians", resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED) -> LatencyChange:
    """Ratio of medians new / base, with an interval that holds for drifting, autocorrelated series.

    The default, "batch-medians", cuts each series into `batch_count` runs of consecutive samples and
    takes the median of the log-times of each: neighbouring samples share their batch, so the
    dependence between them stays inside one number, and the spread of the batch medians carries the
    drift. The log-ratio's standard error comes from both runs' batch medians and the interval from
    Student's t with Welch-Satterthwaite degrees of freedom, which accounts for there being few batches.
    On a synthetic series whose level wanders (AR(1) with phi = 0.9) it covers about 92% at 95%, a
    block bootstrap about 87% and the i.i.d. bootstrap 43% (tests/test_comparison.py).

    "block-bootstrap" is the percentile circular block bootstrap (`automatic_block_length` blocks per
    series), "bootstrap" the i.i.d. one; both are kept for comparison. Their p-value is twice the
    smaller share of resampled ratios on either side of 1.

    Raises
    ------
    MeasurementsError
        A run has fewer than two samples, or a non-positive time (a ratio of them means nothing).
    """
    base = np.asarray(base_s, dtype=np.float64)
    new = np.asarray(new_s, dtype=np.float64)
    if base.size < 2 or new.size < 2:
        raise MeasurementsError("a run to compare has fewer than 2 timing samples: rerun it with more measured calls")
    if base.min() <= 0 or new.min() <= 0:
        raise MeasurementsError("a run to compare has a time of 0 or less: the clock is broken or the samples "
                                "are not times; rerun it")
    base_median, new_median = float(np.median(base)), float(np.median(new))
    ratio = new_median / base_median
    if method == "batch-medians":
        from scipy.stats import t as student

        base_batches, new_batches = _batch_medians(np.log(base)), _batch_medians(np.log(new))
        base_var = base_batches.var(ddof=1) / base_batches.size
        new_var = new_batches.var(ddof=1) / new_batches.size
        error = math.sqrt(base_var + new_var)
        if error == 0.0:
            return LatencyChange(base_median, new_median, ratio, (ratio, ratio), 1.0 if ratio == 1 else 0.0,
                                 method)
        terms = base_var ** 2 / (base_batches.size - 1) + new_var ** 2 / (new_batches.size - 1)
        freedom = (base_var + new_var) ** 2 / terms if terms > 0 else float(base_batches.size + new_batches.size - 2)
        quantile = float(student.ppf(1 - (1 - confidence) / 2, freedom))
        log_ratio = math.log(ratio)
        p_value = float(2 * student.sf(abs(log_ratio) / error, freedom))
        return LatencyChange(base_median, new_median, ratio, (math.exp(log_ratio - quantile * error),
                                                              math.exp(log_ratio + quantile * error)),
                             p_value, method)
    if method not in ("block-bootstrap", "bootstrap"):
        raise MeasurementsError(f"unknown method '{method}': use batch-medians, block-bootstrap or bootstrap")
    blocks = (automatic_block_length(base), automatic_block_length(new)) if method == "block-bootstrap" else (1, 1)
    rng = np.random.default_rng(seed)
    ratios = (block_bootstrap_medians(new, blocks[1], resamples, rng)
              / block_bootstrap_medians(base, blocks[0], resamples, rng))
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    below = (np.count_nonzero(ratios <= 1.0) + 1) / (resamples + 1)
    above = (np.count_nonzero(ratios >= 1.0) + 1) / (resamples + 1)
    return LatencyChange(base_median, new_median, ratio, (float(low), float(high)), min(1.0, 2.0 * min(below, above)),
                         f"{method} (blocks {blocks[0]}, {blocks[1]})")


@dataclass(frozen=True)
class AccuracyChange:
    """Accuracy of both runs, the change new - base with its interval, and the samples behind it."""

    base_accuracy: float
    new_accuracy: float
    change: float
    ci: tuple[float, float]
    p_value: float
    samples: int
    gained: int | None
    lost: int | None
    method: str
    p_adjusted: float | None = None
    verdict: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["ci"] = list(self.ci)
        return data


def _clopper_pearson(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    from scipy.stats import beta

    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return low, high


def accuracy_change(base_predicted: Sequence[int], base_true: Sequence[int], new_predicted: Sequence[int],
                    new_true: Sequence[int], confidence: float = DEFAULT_CONFIDENCE) -> AccuracyChange:
    """Accuracy change new - base, paired sample by sample where both runs saw the same samples.

    Paired (same true classes in the same order): McNemar's exact test on the samples only one run got
    right; the interval is Agresti & Min's (2005) for the difference of paired proportions, which agrees
    with the test and does not collapse to a point when no sample changed. Unpaired (another split or sample count): Fisher's exact
    test, and [low(new) - high(base), high(new) - low(base)] of exact intervals of both accuracies at
    1 - (1 - confidence) / 2 each, which covers at least `confidence`.
    """
    from scipy.stats import binomtest, fisher_exact

    base_predicted, base_true = np.asarray(base_predicted), np.asarray(base_true)
    new_predicted, new_true = np.asarray(new_predicted), np.asarray(new_true)
    base_right, new_right = base_predicted == base_true, new_predicted == new_true
    base_accuracy = float(base_right.mean()) if base_right.size else 0.0
    new_accuracy = float(new_right.mean()) if new_right.size else 0.0
    each = 1.0 - (1.0 - confidence) / 2
    if base_true.shape == new_true.shape and np.array_equal(base_true, new_true) and base_true.size:
        n = base_true.size
        gained = int(np.count_nonzero(new_right & ~base_right))
        lost = int(np.count_nonzero(base_right & ~new_right))
        p_value = 1.0 if gained + lost == 0 else float(binomtest(gained, gained + lost, 0.5).pvalue)
        from scipy.stats import norm

        # Agresti & Min (2005): the Wald interval of the paired difference after adding 1/2 to each cell
        # of the 2x2 table of right and wrong, which keeps its coverage near nominal down to no
        # discordant sample at all.
        total = n + 2
        gained_share, lost_share = (gained + 0.5) / total, (lost + 0.5) / total
        middle = gained_share - lost_share
        spread = float(norm.ppf(1 - (1 - confidence) / 2)) * math.sqrt(
            max(0.0, gained_share + lost_share - middle ** 2) / total)
        interval = (middle - spread, middle + spread)
        return AccuracyChange(base_accuracy, new_accuracy, (gained - lost) / n, interval, p_value, n, gained, lost,
                              "McNemar exact (paired)")
    if not base_right.size or not new_right.size:
        raise MeasurementsError("a run to compare has no per-sample outcomes: rerun it with this version")
    base_hits, new_hits = int(base_right.sum()), int(new_right.sum())
    table = [[new_hits, new_right.size - new_hits], [base_hits, base_right.size - base_hits]]
    p_value = float(fisher_exact(table).pvalue)
    new_ci = _clopper_pearson(new_hits, new_right.size, each)
    base_ci = _clopper_pearson(base_hits, base_right.size, each)
    return AccuracyChange(base_accuracy, new_accuracy, new_accuracy - base_accuracy,
                          (new_ci[0] - base_ci[1], new_ci[1] - base_ci[0]), p_value,
                          min(base_right.size, new_right.size), None, None, "Fisher exact (unpaired: the runs saw "
                          "different samples)")


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: reject where adjusted < alpha, family-wise error <= alpha."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


# -- runs and their matching ---------------------------------------------------------------------

class RunLike(Protocol):
    """What the comparison needs of a run (edge_ai_lib.report.Run has it)."""

    model: str
    compiler: str
    board: str
    threads: int | None
    path: Path
    document: dict[str, Any]

    @property
    def key(self) -> str: ...


def result_files(paths: Iterable[Path]) -> list[Path]:
    """The board-benchmark results among `paths`: a file as given, a directory searched recursively for
    JSON files that are results of kind inference_client or failed_run (plots, summaries, compile
    records and other JSON beside them are passed over).

    Raises
    ------
    MeasurementsError
        A path does not exist, or a directory holds no result.
    """
    import json

    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            inside = []
            for candidate in sorted(path.rglob("*.json")):
                try:
                    head = json.loads(candidate.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if isinstance(head, dict) and head.get("kind") in RESULT_KINDS and "schema_version" in head:
                    inside.append(candidate)
            if not inside:
                raise MeasurementsError(f"'{path}' holds no benchmark result (JSON of kind inference_client): pass "
                                        "the results directory of a workflow run, or result files")
            found.extend(inside)
        else:
            raise MeasurementsError(f"'{path}' does not exist: pass a results directory or result JSON files")
    return found


def group_runs(runs: Sequence[RunLike], side: str) -> dict[str, list[RunLike]]:
    """`runs` by key; several results of one key are repeats of that run (in the order given).

    Raises
    ------
    MeasurementsError
        One file given twice, or two files holding the same measurement (a copy of a result is not a
        repeat: it would pass for a run with no variation at all).
    """
    grouped: dict[str, list[RunLike]] = {}
    seen: dict[Any, RunLike] = {}
    for run in runs:
        samples = (run.document.get("performance") or {}).get("samples_s")
        for mark in (("path", Path(run.path).resolve()), ("samples", tuple(samples)) if samples else None):
            if mark is None:
                continue
            if mark in seen:
                what = "is given twice" if mark[0] == "path" else f"and '{seen[mark].path}' hold the same measurement"
                raise MeasurementsError(f"the {side} set: '{run.path}' {what}: each repeat of a run must be a run of "
                                        "its own (rerun it, e.g. snakemake --forcerun benchmark_board, and copy "
                                        "results/benchmarks each time)")
            seen[mark] = run
        grouped.setdefault(run.key, []).append(run)
    return grouped


def _failed(run: RunLike) -> bool:
    return run.document.get("kind") == "failed_run"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested settings as {"runtime.args.num_threads": 1, ...}; an empty mapping stays one entry."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def provenance_differences(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between the two runs' board, host and settings, one phrase each ("board cpu: A -> B")."""
    differences = []
    for section, label in (("board_provenance", "board"), ("provenance", "host")):
        old_facts, new_facts = base.get(section) or {}, new.get(section) or {}
        for name in PROVENANCE_FIELDS:
            if name in old_facts and name in new_facts and old_facts[name] != new_facts[name]:
                differences.append(f"{label} {name}: {old_facts[name]} -> {new_facts[name]}")
        old_packages, new_packages = old_facts.get("packages") or {}, new_facts.get("packages") or {}
        for name in sorted(set(old_packages) | set(new_packages)):
            if old_packages.get(name) != new_packages.get(name):
                differences.append(f"{label} package {name}: {old_packages.get(name, 'absent')} -> "
                                   f"{new_packages.get(name, 'absent')}")
    old_run, new_run = base.get("run") or {}, new.get("run") or {}
    old_settings = _flatten(old_run.get("settings") or {})
    new_settings = _flatten(new_run.get("settings") or {})
    for name in sorted(set(old_settings) | set(new_settings)):
        if old_settings.get(name) != new_settings.get(name):
            differences.append(f"setting {name}: {old_settings.get(name)} -> {new_settings.get(name)}")
    return differences


def machine_load(document: dict[str, Any]) -> tuple[float, int] | None:
    """(load average of the last minute, logical CPUs) of the machine that ran the benchmark when it was
    busy as the run started (load at or above its CPU count: every core had work besides the benchmark);
    the board's own figure where it sent one, else the host's. None when not busy or not known."""
    for section in ("board_provenance", "provenance"):
        facts = document.get(section) or {}
        load, cpus = facts.get("load_average"), facts.get("cpu_count_logical")
        if load and cpus:
            return (float(load[0]), int(cpus)) if load[0] >= cpus else None
    return None


def load_warnings(base_runs: Sequence[RunLike], new_runs: Sequence[RunLike]) -> list[str]:
    """One warning per side whose machines were busy, with how many runs and the highest load."""
    warnings = []
    for side, runs in (("base", base_runs), ("new", new_runs)):
        busy = [load for load in (machine_load(run.document) for run in runs) if load]
        if busy:
            highest = max(busy)
            warnings.append(f"{len(busy)} of {len(runs)} {side} runs started on a loaded machine (load average up to "
                            f"{highest[0]:.2f} over the last minute on {highest[1]} CPUs): other work competed with "
                            "them; rerun on a quiet machine before trusting a small change")
    return warnings


@dataclass
class RunComparison:
    """One run's comparison: its status, and where both sides were measured, the changes and verdicts."""

    key: str
    status: str  # compared, only in base, only in new, failed in base, failed in new, failed in both
    base_path: str | None = None
    new_path: str | None = None
    latency: LatencyChange | None = None
    accuracy: AccuracyChange | None = None
    differences: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    base_paths: list[str] = field(default_factory=list)
    new_paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "status": self.status, "base_path": self.base_path, "new_path": self.new_path,
                "base_paths": self.base_paths, "new_paths": self.new_paths,
                "latency": self.latency.to_dict() if self.latency else None,
                "accuracy": self.accuracy.to_dict() if self.accuracy else None,
                "differences": self.differences, "warnings": self.warnings, "regressions": self.regressions,
                "unconfirmed": self.unconfirmed}


SINGLE_RUN_NOTE = ("one run a side: the variation between runs is unmeasured, so this interval holds for this pair "
                   "of runs only; give each side's repeated runs (e.g. --baseline b1/ b2/ b3/) to judge the variant")


@dataclass
class Comparison:
    """Every run of two result sets, compared; what the table, the JSON and the report show."""

    runs: list[RunComparison]
    confidence: float
    latency_threshold: float
    accuracy_threshold: float
    method: str
    warnings: list[str] = field(default_factory=list)
    correction: str = CORRECTION
    gate_single_runs: bool = False

    @property
    def regressions(self) -> list[RunComparison]:
        return [run for run in self.runs if run.regressions]

    @property
    def single_runs(self) -> list[RunComparison]:
        """Runs whose latency was judged within one pair of runs (between-run variation unmeasured)."""
        return [run for run in self.runs if run.latency is not None and not run.latency.between_runs]

    def by_key(self) -> dict[str, RunComparison]:
        return {run.key: run for run in self.runs}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": {
                "latency": "ratio of board-side medians new/base. With repeated runs on a side: each run's median is "
                           "one observation, ratio of their geometric means, Welch's t on their logarithms (the "
                           "variation between runs is in the interval). With one run a side: interval and p-value "
                           f"by {self.method} ({BATCHES} batches of consecutive samples per run, Student's t with "
                           "Welch's degrees of freedom, for batch-medians), which holds for that pair of runs only",
                "accuracy": "change new - base; McNemar exact test on per-sample correctness (paired), Agresti-Min "
                            "interval of the paired difference",
                "correction": f"{self.correction} over the runs compared, latency and accuracy separately",
                "confidence": self.confidence,
                "latency_threshold": self.latency_threshold, "accuracy_threshold": self.accuracy_threshold,
                "gate_single_runs": self.gate_single_runs,
            },
            "regressed": [run.key for run in self.regressions],
            "single_runs": [run.key for run in self.single_runs],
            "warnings": self.warnings,
            "runs": [run.to_dict() for run in self.runs],
        }


def latency_change(base: Sequence[RunLike], new: Sequence[RunLike], confidence: float = DEFAULT_CONFIDENCE,
                   method: str = "batch-medians", resamples: int = DEFAULT_RESAMPLES,
                   seed: int = DEFAULT_SEED) -> LatencyChange:
    """The latency change between the measured runs of one key: between runs where a side has repeats
    (`between_run_ratio`), else within the single pair (`median_ratio`)."""
    if len(base) >= 2 or len(new) >= 2:
        return between_run_ratio([float(np.median(run.document["performance"]["samples_s"])) for run in base],
                                 [float(np.median(run.document["performance"]["samples_s"])) for run in new],
                                 confidence)
    return median_ratio(base[0].document["performance"]["samples_s"], new[0].document["performance"]["samples_s"],
                        confidence, method, resamples, seed)


def _outcomes(run: RunLike) -> tuple[list[int], list[int]]:
    outcomes = run.document.get("outcomes") or {}
    return outcomes.get("predicted_class", []), outcomes.get("true_class", [])


def compare_runs(base_runs: Sequence[RunLike], new_runs: Sequence[RunLike],
                 confidence: float = DEFAULT_CONFIDENCE, latency_threshold: float = DEFAULT_LATENCY_THRESHOLD,
                 accuracy_threshold: float = DEFAULT_ACCURACY_THRESHOLD, method: str = "batch-medians",
                 resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                 gate_single_runs: bool = False) -> Comparison:
    """Match the runs of two sets by key and compare each pair (see the module's docstring).

    Results of one key on one side are repeats of that run. A repeat that failed while others were
    measured is left out with a warning; a key whose every repeat failed is a failed run.

    Raises
    ------
    MeasurementsError
        A set has one file twice or one measurement twice, or a run's samples cannot be compared.
    """
    if not 0.5 < confidence < 1.0:
        raise MeasurementsError(f"confidence must lie between 0.5 and 1, got {confidence}")
    base, new = group_runs(base_runs, "base"), group_runs(new_runs, "new")
    keys = [*base, *(key for key in new if key not in base)]
    compared: list[RunComparison] = []
    loaded: tuple[list[RunLike], list[RunLike]] = ([], [])
    for number, key in enumerate(sorted(keys)):
        olds, nows = base.get(key, []), new.get(key, [])
        entry = RunComparison(key, "compared", str(olds[0].path) if olds else None,
                              str(nows[0].path) if nows else None,
                              base_paths=[str(run.path) for run in olds], new_paths=[str(run.path) for run in nows])
        compared.append(entry)
        if not olds or not nows:
            entry.status = "only in new" if not olds else "only in base"
            continue
        measured_old = [run for run in olds if not _failed(run)]
        measured_new = [run for run in nows if not _failed(run)]
        if not measured_old or not measured_new:
            entry.status = "failed in both" if not measured_old and not measured_new else \
                "failed in new" if not measured_new else "failed in base"
            if entry.status == "failed in new":
                failure = nows[0].document.get("failure") or {}
                entry.regressions.append(f"measured in the base, failed in the new set "
                                         f"({failure.get('stage', '?')}: {failure.get('error', '?')})")
            continue
        for side, runs, measured in (("base", olds, measured_old), ("new", nows, measured_new)):
            if len(measured) < len(runs):
                entry.warnings.append(f"{len(runs) - len(measured)} of {len(runs)} {side} repeats failed and are "
                                      "left out")
        old, now = measured_old[0], measured_new[0]
        entry.latency = latency_change(measured_old, measured_new, confidence, method, resamples, seed + number)
        entry.accuracy = accuracy_change(*_outcomes(old), *_outcomes(now), confidence)
        entry.differences = provenance_differences(old.document, now.document)
        loaded[0].extend(measured_old)
        loaded[1].extend(measured_new)
        if any(text.startswith(("board ", "host ")) for text in entry.differences):
            entry.warnings.append("the two runs ran on machines or software that differ (see the differences): "
                                  "a change may come from them, not from the change under test")
        if entry.accuracy.method.startswith("Fisher"):
            entry.warnings.append("the runs saw different samples: accuracy is compared unpaired")
        for side, measured in (("base", measured_old), ("new", measured_new)):
            if any(_outcomes(run)[0] != _outcomes(measured[0])[0] for run in measured[1:]):
                entry.warnings.append(f"the {side} repeats predicted differently: the runtime is not deterministic; "
                                      "accuracy is compared on the first repeat of each side")
    _judge(compared, 1.0 - confidence, latency_threshold, accuracy_threshold, gate_single_runs)
    return Comparison(compared, confidence, latency_threshold, accuracy_threshold, method, load_warnings(*loaded),
                      gate_single_runs=gate_single_runs)


def _judge(runs: list[RunComparison], alpha: float, latency_threshold: float, accuracy_threshold: float,
           gate_single_runs: bool = False) -> None:
    """Verdicts from Holm-adjusted p-values, and the regressions they make."""
    measured = [run for run in runs if run.latency is not None]
    for family in ("latency", "accuracy"):
        changes = [getattr(run, family) for run in measured]
        for run, adjusted in zip(measured, holm_adjusted([change.p_value for change in changes])):
            change = getattr(run, family)
            if family == "latency":
                verdict = "indistinguishable" if adjusted >= alpha else "slower" if change.ratio > 1 else "faster"
            else:
                verdict = "indistinguishable" if adjusted >= alpha else "better" if change.change > 0 else "worse"
            setattr(run, family, type(change)(**{**change.__dict__, "p_adjusted": adjusted, "verdict": verdict}))
    for run in measured:
        latency = run.latency
        if latency.verdict == "slower" and latency.ratio > 1.0 + latency_threshold:
            scope = (f"between {latency.base_runs} base and {latency.new_runs} new runs" if latency.between_runs
                     else "within one pair of runs")
            text = (f"slower: {latency.ratio:.2f}x the base median ({scope}, 95% CI {latency.ci[0]:.2f}-"
                    f"{latency.ci[1]:.2f}), beyond the latency threshold of +{latency_threshold:.0%}")
            if latency.between_runs or gate_single_runs:
                run.regressions.append(text)
            else:
                run.unconfirmed.append(f"{text}; unconfirmed: {SINGLE_RUN_NOTE}")
        if run.accuracy.verdict == "worse" and -run.accuracy.change > accuracy_threshold:
            run.regressions.append(f"less accurate: {run.accuracy.change:+.2%} ({run.accuracy.lost} samples lost, "
                                   f"{run.accuracy.gained} gained), beyond the accuracy threshold of "
                                   f"{accuracy_threshold * 100:g} percentage points")


# -- the table as text ---------------------------------------------------------------------------

def format_duration(seconds: float | None) -> str:
    """A time in the unit that reads best: 21.3 µs, 1.25 ms, 2.10 s."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if abs(seconds) < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if abs(seconds) < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def latency_verdict_text(latency: LatencyChange) -> str:
    """The latency verdict as the table and the report show it; a single pair of runs says so."""
    if latency.between_runs:
        return f"{latency.verdict} (p={latency.p_adjusted:.3g}; {latency.base_runs}+{latency.new_runs} runs)"
    if latency.verdict == "indistinguishable":
        return f"indistinguishable (p={latency.p_adjusted:.3g}; 1 run a side: between-run variation unmeasured)"
    return f"{latency.verdict} in this pair only (p={latency.p_adjusted:.3g}; 1 run a side: between-run variation " \
           "unmeasured)"


def table_rows(comparison: Comparison) -> list[dict[str, str]]:
    """One row of text cells per run: what the terminal table and the report's section show."""
    rows = []
    for run in comparison.runs:
        gate = "REGRESSION" if run.regressions else "unconfirmed" if run.unconfirmed else "ok"
        row = {"run": run.key, "base": "—", "new": "—", "ratio": "—", "latency": run.status, "accuracy": "—",
               "accuracy_change": "—", "gate": gate}
        if run.latency is not None:
            latency, accuracy = run.latency, run.accuracy
            row.update(base=format_duration(latency.base_median_s), new=format_duration(latency.new_median_s),
                       ratio=f"{latency.ratio:.3f} [{latency.ci[0]:.3f}, {latency.ci[1]:.3f}]",
                       latency=latency_verdict_text(latency),
                       accuracy=f"{accuracy.base_accuracy:.4f} -> {accuracy.new_accuracy:.4f}",
                       accuracy_change=f"{accuracy.change:+.2%} [{accuracy.ci[0]:+.2%}, {accuracy.ci[1]:+.2%}] "
                                       f"{accuracy.verdict}")
        rows.append(row)
    return rows


TABLE_HEADERS = {"run": "run", "base": "base median", "new": "new median", "ratio": "new/base [95% CI]",
                 "latency": "latency verdict (Holm p; runs)", "accuracy": "accuracy base -> new",
                 "accuracy_change": "accuracy change [95% CI]", "gate": "gate"}


def method_note(comparison: Comparison) -> str:
    """One paragraph on how the table was made and what makes a regression."""
    judged = [run for run in comparison.runs if run.latency]
    single = comparison.single_runs
    if judged and not single:
        scope = ("Between runs: each run's median is one observation (geometric means of the run medians, "
                 "Welch's t on their logarithms; a single run on a side is judged against the spread of the other "
                 "side's runs), so the variation between runs is in the intervals.")
    elif single and len(single) == len(judged):
        scope = (f"One run a side: intervals by {comparison.method} within each pair of runs; the variation "
                 "between runs is unmeasured, so a verdict says how these two runs differ, not the variants, and "
                 + ("a slowdown still fails the gate (--gate-single-runs)." if comparison.gate_single_runs else
                    "a slowdown is 'unconfirmed', not a regression. Give each side's repeated runs (--baseline b1/ "
                    "b2/ b3/) to judge the variants."))
    else:
        scope = (f"{len(judged) - len(single)} runs with repeats (between-run intervals), {len(single)} with one "
                 f"run a side (within-run intervals by {comparison.method}: between-run variation unmeasured).")
    return (f"Ratio: median board-side time per call, new / base; {comparison.confidence:.0%} intervals. {scope} "
            f"Verdicts corrected for {len(judged)} runs by {comparison.correction}. A regression is significantly "
            f"slower by more than {comparison.latency_threshold:.0%}, or significantly less accurate by more than "
            f"{comparison.accuracy_threshold * 100:g} percentage points, or failed in the new set.")


def format_table(comparison: Comparison) -> str:
    """The comparison as a plain-text table, then its warnings and differences, for a terminal or a log."""
    rows = table_rows(comparison)
    widths = {name: max(len(header), *(len(row[name]) for row in rows)) if rows else len(header)
              for name, header in TABLE_HEADERS.items()}
    lines = ["  ".join(header.ljust(widths[name]) for name, header in TABLE_HEADERS.items()),
             "  ".join("-" * widths[name] for name in TABLE_HEADERS)]
    lines += ["  ".join(row[name].ljust(widths[name]) for name in TABLE_HEADERS) for row in rows]
    lines.append("\n" + method_note(comparison))
    lines += comparison.warnings
    for run in comparison.runs:
        for text in [*run.regressions, *run.unconfirmed, *run.warnings]:
            lines.append(f"{run.key}: {text}")
        if run.differences:
            shown = run.differences[:6]
            more = f" (and {len(run.differences) - 6} more)" if len(run.differences) > 6 else ""
            lines.append(f"{run.key}: differs in " + "; ".join(shown) + more)
    return "\n".join(lines) + "\n"
