"""Render the HTML report and the summary files from benchmark results.

    python -m edge_ai_lib.scenarios.render_report results/report.html \\
        results/benchmarks/MODEL/COMPILER/BOARD-tTHREADS.json [...]

Each result names its own run (its `run` section: model, compiler, board, threads); where the files
lie does not matter. Beside the page go summary.json (an object keyed by run id such as
"keras-cnn/tflite-int8/local/t1", flat values, as `dvc metrics show` reads it) and summary.csv (one
row per run); --summary-json and --summary-csv put them elsewhere. With --baseline (an earlier run's
results: directories or files), each run's change since then is shown too (see compare_runs). With
--references (the framework models evaluated on this host by inference_performance --reference MODEL,
rule evaluate_model), each variant is held to its framework model: accuracy change, top-1 agreement and
largest output difference, and the recommendation's accuracy bar is the framework model's accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from edge_ai_lib.core.args import json_object
from edge_ai_lib.scenarios.cli import run_scenario


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("output", type=Path, help="The HTML file to write")
    parser.add_argument("results", type=Path, nargs="+", help="Benchmark result JSON files")
    parser.add_argument("--title", default="edge-ai-tester report", help="Title of the report")
    parser.add_argument("--summary-json", type=Path, default=None,
                        help="Where to write the JSON summary (default: summary.json beside the page)")
    parser.add_argument("--summary-csv", type=Path, default=None,
                        help="Where to write the CSV summary (default: summary.csv beside the page)")
    parser.add_argument("--baseline", type=Path, nargs="*", default=[],
                        help="An earlier run's results (directories or result files): show each run's change since")
    parser.add_argument("--references", type=Path, nargs="*", default=[],
                        help="The framework models' own results on this host (inference_performance with "
                             "--reference MODEL_KEY), one per model")
    parser.add_argument("--accuracy-tolerance", type=float, default=0.01,
                        help="Variants within this accuracy of the framework model's (of the most accurate variant "
                             "without --references) may be recommended (default: 0.01, one point)")
    parser.add_argument("--latency-threshold", type=float, default=0.1,
                        help="With --baseline: a run significantly slower by more than this share fails the gate "
                             "(default: 0.1)")
    parser.add_argument("--accuracy-threshold", type=float, default=0.01,
                        help="With --baseline: a run significantly less accurate by more than this fails the gate "
                             "(default: 0.01)")
    parser.add_argument("--comparison", type=json_object, default=None, metavar="JSON",
                        help="The workflow's comparison settings as one JSON object (baseline, latency_threshold, "
                             "accuracy_threshold, confidence); they replace the options above")
    parser.add_argument("--onnx-grid", type=Path, nargs="*", default=[], metavar="GRID_JSON",
                        help="The ONNX conversion grid (support-grid.json of onnx_conversion) to show in the report")
    args = parser.parse_args(argv)
    from edge_ai_lib.report import render

    settings = {"latency_threshold": args.latency_threshold, "accuracy_threshold": args.accuracy_threshold}
    baseline = args.baseline
    if args.comparison is not None:
        given = dict(args.comparison)
        baseline = [Path(path) for path in given.pop("baseline", None) or []]
        unknown = set(given) - {"latency_threshold", "accuracy_threshold", "confidence"}
        if unknown:
            parser.error(f"--comparison has no key {sorted(unknown)[0]!r}; known: baseline, latency_threshold, "
                         "accuracy_threshold, confidence")
        settings.update(given)

    summary_json = args.summary_json or args.output.with_name("summary.json")
    summary_csv = args.summary_csv or args.output.with_name("summary.csv")
    path = render(args.results, args.output, args.title, summary_csv_path=summary_csv, summary_json_path=summary_json,
                  baseline_paths=baseline, accuracy_tolerance=args.accuracy_tolerance,
                  comparison_settings=settings, reference_paths=args.references,
                  onnx_grid_path=args.onnx_grid[0] if args.onnx_grid else None)
    print(f"wrote {path}, {summary_json} and {summary_csv} ({len(args.results)} runs)")


if __name__ == "__main__":
    sys.exit(run_scenario(main))
