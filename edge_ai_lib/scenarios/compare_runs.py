"""Compare two result sets run by run: did the change make each run faster or slower, more or less accurate?

    python -m edge_ai_lib.scenarios.compare_runs --baseline OLD_1/ [OLD_2/ ...] --new NEW_1/ [NEW_2/ ...] \\
        [--latency-threshold 0.1] [--accuracy-threshold 0.01] [--json comparison.json]

Each set is one or more results directories (searched recursively for board-benchmark results) or
result JSON files; runs are matched by their own `run` section (model, compiler, board, threads),
never by path. Results of one run given several times on a side (the directories of repeated
workflow runs) are repeats: each repeat's median is one observation, so the variation between runs
(other work on the machine, a cache or frequency that settled differently) is inside the interval.
With one run a side that variation is unmeasured: the verdict says so and a slowdown is
"unconfirmed", not a regression (--gate-single-runs makes it one). Prints a table (ratio new/base
with its confidence interval, verdict, accuracy change with its interval), warns where the two sides'
machines, packages or settings differ or a machine was loaded, and exits with status 3 when a run
regressed beyond a threshold, so that CI can gate on it (1 for an error, 0 otherwise).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

from edge_ai_lib.core import comparison as stats
from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.errors import ConfigurationError
from edge_ai_lib.core.files import atomic_write_text
from edge_ai_lib.scenarios.cli import parse_scenario_arguments, run_scenario

REGRESSION_EXIT_STATUS = 3

OPTIONS = (
    Argument("baseline", Path, help="The result set to compare against: results directories (searched recursively) "
                                    "or result JSON files; one directory per repeated run", many=True),
    Argument("new", Path, help="The result set to judge: results directories or result JSON files; one directory "
                               "per repeated run", many=True),
    Argument("latency_threshold", float, stats.DEFAULT_LATENCY_THRESHOLD,
             "A run regresses when significantly slower by more than this share of the base median (0.1: 10%%)"),
    Argument("accuracy_threshold", float, stats.DEFAULT_ACCURACY_THRESHOLD,
             "A run regresses when significantly less accurate by more than this (0.01: one percentage point)"),
    Argument("confidence", float, stats.DEFAULT_CONFIDENCE,
             "Confidence of the intervals; 1 minus it is the chance of any false flag over all runs (Holm)"),
    Argument("method", str, "batch-medians", "How the latency ratio's interval is computed",
             choices=("batch-medians", "block-bootstrap", "bootstrap")),
    Argument("json", Path, None, "Also write the comparison as JSON to this file"),
    Argument("gate_single_runs", bool, False,
             "Fail the gate on a slowdown seen with one run a side too (between-run variation unmeasured: on a "
             "shared machine unchanged runs then fail often)"),
    Argument("exit_zero", bool, False, "Exit 0 even when a run regressed (the table still says so)"),
)


def load_runs(paths: Sequence[Path]) -> list:
    """The runs of a result set given as directories and files (see `stats.result_files`)."""
    from edge_ai_lib.report import run_from_result

    return [run_from_result(path) for path in stats.result_files(paths)]


def compare_sets(baseline: Sequence[Path], new: Sequence[Path], **settings) -> stats.Comparison:
    """Load both sets and compare them (settings: those of `stats.compare_runs`)."""
    return stats.compare_runs(load_runs(baseline), load_runs(new), **settings)


def main(argv: Sequence[str] | None = None) -> None:
    run = parse_scenario_arguments(__doc__.splitlines()[0], [], OPTIONS, argv)
    options = run.options
    if options.latency_threshold < 0 or options.accuracy_threshold < 0:
        raise ConfigurationError("--latency-threshold and --accuracy-threshold must be 0 or more")
    if not 0.5 < options.confidence < 1:
        raise ConfigurationError(f"--confidence must lie between 0.5 and 1 (e.g. 0.95), got {options.confidence}")
    comparison = compare_sets(options.baseline, options.new, confidence=options.confidence,
                              latency_threshold=options.latency_threshold,
                              accuracy_threshold=options.accuracy_threshold, method=options.method,
                              gate_single_runs=options.gate_single_runs)
    print(stats.format_table(comparison), end="")
    if options.json is not None:
        atomic_write_text(options.json, json.dumps(comparison.to_dict(), indent=2) + "\n")
    regressed = comparison.regressions
    if regressed:
        print(f"{len(regressed)} of {len(comparison.runs)} runs regressed: "
              + ", ".join(run.key for run in regressed), file=sys.stderr)
        if not options.exit_zero:
            raise SystemExit(REGRESSION_EXIT_STATUS)
    else:
        unconfirmed = [run.key for run in comparison.runs if run.unconfirmed]
        print(f"no regression in {len(comparison.runs)} runs"
              + (f" ({len(unconfirmed)} unconfirmed slowdowns with one run a side: "
                 f"{', '.join(unconfirmed)})" if unconfirmed else ""))


if __name__ == "__main__":
    sys.exit(run_scenario(main))
