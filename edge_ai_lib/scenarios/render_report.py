"""Render the HTML report and the summary files from benchmark results.

    python -m edge_ai_lib.scenarios.render_report results/report.html \\
        results/benchmarks/MODEL/COMPILER/BOARD-tTHREADS.json [...]

Each result names its own run (its `run` section: model, compiler, board, threads); where the files
lie does not matter. Beside the page go summary.json (an object keyed by run id such as
"keras-cnn/tflite-int8/local/t1", flat values, as `dvc metrics show` reads it) and summary.csv (one
row per run); --summary-json and --summary-csv put them elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

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
    args = parser.parse_args(argv)
    from edge_ai_lib.report import render

    summary_json = args.summary_json or args.output.with_name("summary.json")
    summary_csv = args.summary_csv or args.output.with_name("summary.csv")
    path = render(args.results, args.output, args.title, summary_csv_path=summary_csv, summary_json_path=summary_json)
    print(f"wrote {path}, {summary_json} and {summary_csv} ({len(args.results)} runs)")


if __name__ == "__main__":
    sys.exit(run_scenario(main))
