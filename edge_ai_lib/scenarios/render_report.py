"""Render the HTML report from benchmark results.

    python -m edge_ai_lib.scenarios.render_report results/report.html \\
        results/benchmarks/MODEL/COMPILER/BOARD.json [...]

Each result is named by its path: results/benchmarks/{model}/{compiler}/{board}.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from edge_ai_lib.scenarios.cli import run_scenario


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="The HTML file to write")
    parser.add_argument("results", type=Path, nargs="+", help="Benchmark result JSON files")
    parser.add_argument("--title", default="edge-ai-tester report", help="Title of the report")
    args = parser.parse_args(argv)
    from edge_ai_lib.report import render

    path = render(args.results, args.output, args.title)
    print(f"wrote {path} ({len(args.results)} runs)")


if __name__ == "__main__":
    sys.exit(run_scenario(main))
