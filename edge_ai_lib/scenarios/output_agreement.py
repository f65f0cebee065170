"""Outputs of runs on emulated boards against the host's runs of the same models: max abs error, top-1 agreement.

    python -m edge_ai_lib.scenarios.output_agreement --results results/benchmarks/ [--json agreement.json]
        [--max-abs-error 1e-4] [--min-top1 1.0]

Every result whose board is emulated (`emulated: true`) is paired with the run of the same model,
compiler class and settings (target aside) and runtime on a board that is not; their raw outputs
are compared sample by sample. Exits with status 3 when a pair disagrees beyond the bounds (or no host
run was found), so that cross-compiled code is proved correct or the run fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

from edge_ai_lib.core.agreement import agreement_with_host
from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.comparison import result_files
from edge_ai_lib.core.files import atomic_write_text
from edge_ai_lib.core.results import read_result
from edge_ai_lib.scenarios.cli import parse_scenario_arguments, run_scenario

DISAGREEMENT_EXIT_STATUS = 3

OPTIONS = (
    Argument("results", Path, help="Results directories (searched recursively) or result JSON files", many=True),
    Argument("json", Path, None, "Also write the agreement figures as JSON to this file"),
    Argument("max_abs_error", float, None, "Fail when a float run's outputs differ from the host's by more than "
             "this (default: no bound)"),
    Argument("min_top1", float, None, "Fail when the share of samples with the host's top-1 class is below this "
             "(default: no bound)"),
)


def main(argv: Sequence[str] | None = None) -> None:
    run = parse_scenario_arguments(__doc__.splitlines()[0], [], OPTIONS, argv)
    options = run.options
    results = [(path, read_result(path)) for path in result_files(options.results)]
    agreements = agreement_with_host(results)
    failures = []
    print(f"{'emulated run':58} {'host run':40} {'samples':>7} {'max abs error':>13} {'top-1 agreement':>15}")
    for path, entry in sorted(agreements.items()):
        document = dict(results)[Path(path)]
        own = document["run"]
        name = f"{own['model']}/{own['compiler']}/{own['board']}/t{own['threads']}"
        if "error" in entry:
            print(f"{name:58} {entry['error']}")
            failures.append(name)
            continue
        reference = entry["reference"]
        host = f"{reference['model']}/{reference['compiler']}/{reference['board']}/t{reference['threads']}"
        print(f"{name:58} {host:40} {entry['samples']:7d} {entry['max_abs_error']:13.3g} "
              f"{entry['top1_agreement']:15.4f}")
        quantized = entry["outputs_dtype"].startswith(("int", "uint"))
        if ((options.max_abs_error is not None and not quantized and entry["max_abs_error"] > options.max_abs_error)
                or (options.min_top1 is not None and entry["top1_agreement"] < options.min_top1)):
            failures.append(name)
    if not agreements:
        print("no result of an emulated board among the results given")
    if options.json is not None:
        atomic_write_text(options.json, json.dumps(agreements, indent=2) + "\n")
    if failures:
        print(f"{len(failures)} of {len(agreements)} emulated runs disagree with the host or have no host run: "
              + ", ".join(failures), file=sys.stderr)
        raise SystemExit(DISAGREEMENT_EXIT_STATUS)


if __name__ == "__main__":
    sys.exit(run_scenario(main))
