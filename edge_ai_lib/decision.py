"""What the report's reader decides from: the recommended variant per model and board, units that read
well, spread warnings that fire only when the spread matters, and the report's header facts.

Kept apart from report.py (which lays the page out) so that each piece can be tested on its own.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Sequence

import numpy as np

ACCURACY_TOLERANCE = 0.01
SPREAD_WARNING_THRESHOLD = 0.10  # IQR / median, as torch.utils.benchmark judges a measurement's noise
FEW_SAMPLES = 30
RESOURCE_PLOT_MIN_SAMPLES = 10


def accuracy_interval(accuracy: float, samples: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of an accuracy measured on `samples` samples (stays inside [0, 1])."""
    if samples <= 0:
        return 0.0, 1.0
    z = {0.95: 1.959963984540054}.get(confidence)
    if z is None:
        from scipy.stats import norm

        z = float(norm.ppf(1 - (1 - confidence) / 2))
    centre = (accuracy + z * z / (2 * samples)) / (1 + z * z / samples)
    half = z / (1 + z * z / samples) * math.sqrt(accuracy * (1 - accuracy) / samples + z * z / (4 * samples ** 2))
    return max(0.0, centre - half), min(1.0, centre + half)


def time_unit(values_ms: Sequence[float | None]) -> tuple[str, float]:
    """The unit a column of times (given in ms) reads best in, and the factor from ms to it: µs when every
    value is under 1 ms, s when one reaches 10 s, ms otherwise."""
    finite = [abs(v) for v in values_ms if v is not None and math.isfinite(v)]
    if finite and max(finite) < 1.0:
        return "µs", 1e3
    if finite and max(finite) >= 10_000.0:
        return "s", 1e-3
    return "ms", 1.0


def format_in_unit(value_ms: float | None, factor: float, missing: str = "—") -> str:
    """A time in a column's unit with three significant digits (no exponent): 21.3, 0.842, 1250."""
    if value_ms is None or not math.isfinite(value_ms):
        return missing
    value = value_ms * factor
    magnitude = abs(value)
    if magnitude >= 100 or value == 0:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def spread_warnings(samples_s: Sequence[float]) -> list[str]:
    """A warning when the times spread so widely (IQR over 10% of the median) that a comparison of
    medians needs care. The interquartile range ignores the few outliers every run has, so, unlike the
    coefficient of variation, one slow call cannot trigger it."""
    values = np.asarray(samples_s, dtype=np.float64)
    if values.size < 4:
        return []
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    if median <= 0:
        return []
    ratio = (q3 - q1) / median
    if ratio <= SPREAD_WARNING_THRESHOLD:
        return []
    return [f"times spread widely: the interquartile range is {ratio:.0%} of the median (over "
            f"{SPREAD_WARNING_THRESHOLD:.0%}); the machine may be busy or throttling: trust only differences "
            "larger than the confidence intervals, or rerun on a quiet machine"]


def sample_caveats(sample_count: int, accuracy: float | None, class_count: int | None) -> list[str]:
    """What makes a run's figures weak whatever its speed: few samples, accuracy near chance."""
    caveats = []
    if sample_count < FEW_SAMPLES:
        caveats.append(f"only {sample_count} samples")
    if accuracy is not None and class_count and accuracy <= 1.5 / class_count:
        caveats.append(f"accuracy {accuracy:.2f} is near chance ({1 / class_count:.2f})")
    return caveats


def reference_agreement(run: Any, reference: Any) -> dict[str, Any]:
    """How a compiled variant's answers agree with its framework model's on the same samples.

    Parameters
    ----------
    run, reference
        The variant's benchmark and the framework model's evaluation (objects with `path` and
        `document`, as report.Run and report.Reference).

    Returns
    -------
    dict[str, Any]
        accuracy_change (variant - framework) with its 95% interval and McNemar p-value (paired, sample by
        sample), top1_agreement (share of samples where both predict the same class), max_output_error
        (largest absolute difference of the raw outputs, None where either side kept none or their
        shapes differ), and `note` where the samples were not the same (then only the accuracies compare).
    """
    from edge_ai_lib.core.agreement import output_agreement
    from edge_ai_lib.core.comparison import accuracy_change
    from edge_ai_lib.core.errors import MeasurementsError
    from edge_ai_lib.core.results import read_outputs

    mine, theirs = run.document.get("outcomes") or {}, reference.document.get("outcomes") or {}
    predicted, truth = mine.get("predicted_class", []), mine.get("true_class", [])
    reference_predicted, reference_truth = theirs.get("predicted_class", []), theirs.get("true_class", [])
    found: dict[str, Any] = {"accuracy_change": None, "accuracy_change_ci": None, "accuracy_change_p": None,
                             "top1_agreement": None, "max_output_error": None, "note": None,
                             "reference_accuracy": reference.document["quality"]["accuracy"]}
    if not predicted or not reference_predicted:
        found["note"] = "no per-sample outcomes on one side: rerun it with this version"
        return found
    change = accuracy_change(reference_predicted, reference_truth, predicted, truth)
    found.update(accuracy_change=change.change, accuracy_change_ci=list(change.ci), accuracy_change_p=change.p_value)
    if truth != reference_truth:
        found["note"] = (f"the framework model saw other samples ({len(reference_truth)} against {len(truth)}): "
                         "only the accuracies compare")
        return found
    found["top1_agreement"] = float(np.mean(np.asarray(predicted) == np.asarray(reference_predicted)))
    try:
        outputs, reference_outputs = read_outputs(run.path, run.document), read_outputs(reference.path,
                                                                                        reference.document)
        agreement = output_agreement(reference_outputs, outputs, reference_predicted, predicted)
    except MeasurementsError:  # no raw outputs kept, or of another shape: the classes still compare
        return found
    found["max_output_error"] = agreement["max_abs_error"]
    return found


def recommendations(runs: Sequence[Any], names: dict[int, str], tolerance: float = ACCURACY_TOLERANCE,
                    references: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Per (model, board): the fastest variant among those whose accuracy is within `tolerance` of the
    framework model's own on the same samples, the variants indistinguishable from it (their 95% intervals
    of the median overlap), and why, in one line.

    Without a framework reference for a model (a hand run given no --references), the most accurate
    variant's accuracy stands in for it, and the line says so.

    Parameters
    ----------
    runs : Sequence
        Runs as report.Run (measured ones; failed runs are skipped).
    names : dict[int, str]
        Each run's name among its model's variants (report.variant_names), by id(run).
    references : dict[str, Any] | None
        The framework models' evaluations (report.Reference) by model key.
    """
    from edge_ai_lib.core.comparison import format_duration

    references = references or {}
    groups: dict[tuple[str, str], list[Any]] = {}
    for run in runs:
        if run.document.get("kind") != "failed_run":
            groups.setdefault((run.model, run.board), []).append(run)
    found = []
    for (model, board), members in sorted(groups.items()):
        def accuracy(run):
            return run.document["quality"]["accuracy"]

        def median(run):
            return run.document["performance"]["statistics"]["median"]

        reference = references.get(model)
        if reference is not None:
            reference_accuracy = reference.document["quality"]["accuracy"]
            against = f"the framework model's accuracy ({reference.framework}, {reference_accuracy:.4f})"
        else:
            best_variant = max(members, key=accuracy)
            reference_accuracy = accuracy(best_variant)
            against = (f"the best variant's accuracy ({names[id(best_variant)]}, {reference_accuracy:.4f}; no "
                       "framework reference was given)")
        eligible = [run for run in members if accuracy(run) >= reference_accuracy - tolerance - 1e-12]
        excluded = [run for run in members if run not in eligible]
        lost = ", ".join(f"{names[id(run)]} ({accuracy(run) - reference_accuracy:+.2%})" for run in excluded)
        if not eligible:
            found.append({"model": model, "board": board, "variant": "none", "verdict": "none", "tied": [],
                          "why": (f"every variant lost more than {tolerance * 100:g} percentage points against "
                                  f"{against}: {lost}"), "caveats": [], "accuracy": None, "key": None})
            continue
        best = min(eligible, key=median)
        high = best.document["performance"]["statistics"]["median_ci95"][1]
        tied = [run for run in eligible if run is not best
                and run.document["performance"]["statistics"]["median_ci95"][0] <= high]
        quality = best.document["quality"]
        if len(members) == 1:
            why = (f"the only variant measured ({format_duration(median(best))} median), within "
                   f"{tolerance * 100:g} percentage points of {against}")
        else:
            why = (f"fastest ({format_duration(median(best))} median) of the {len(eligible)} variant"
                   f"{'s' if len(eligible) != 1 else ''} within {tolerance * 100:g} percentage points of {against}")
            if tied:
                why += "; indistinguishable in speed from " + ", ".join(names[id(run)] for run in tied)
        if excluded:
            why += "; left out for lost accuracy: " + lost
        caveats = sample_caveats(quality["sample_count"], quality["accuracy"], len(quality.get("class_names") or []))
        found.append({"model": model, "board": board, "variant": names[id(best)],
                      "verdict": "indistinguishable" if tied else "recommended", "tied": [names[id(r)] for r in tied],
                      "why": why, "caveats": caveats, "accuracy": quality["accuracy"], "key": best.key})
    return found


def header_facts(runs: Sequence[Any]) -> dict[str, Any]:
    """Date of the report, and the commits, hosts and boards (with their CPUs) its results come from."""
    commits, hosts, boards = set(), set(), {}
    for run in runs:
        provenance = run.document.get("provenance") or {}
        if provenance.get("git_commit"):
            commits.add(provenance["git_commit"][:12])
        if provenance.get("hostname"):
            hosts.add(provenance["hostname"])
        board = (run.document.get("board_provenance") or {})
        boards.setdefault(run.board, board.get("cpu") or board.get("machine") or "")
    return {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commits": sorted(commits) or ["unknown"], "hosts": sorted(hosts) or ["unknown"],
            "boards": [f"{name} ({cpu})" if cpu else name for name, cpu in sorted(boards.items())]}


def resource_numbers(resources: dict[str, Any]) -> str | None:
    """A board's CPU and memory use as numbers, for a run with too few samples to plot; None without any."""
    samples = resources.get("samples") or []
    if not samples:
        return None
    cpu = [sample["cpu_percent"] for sample in samples]
    memory = max(sample["rss_bytes"] for sample in samples) / 2 ** 20
    return (f"{len(samples)} samples: CPU mean {sum(cpu) / len(cpu):.0f}%, peak {max(cpu):.0f}%; "
            f"resident memory peak {memory:.0f} MiB")
