"""Run a trained model with its own framework on this host: quality, speed, plots.

    python -m edge_ai_lib.scenarios.inference_performance WRAPPER DATASET REPORT_DIR REPORT_NAME \\
        --model-path build/digits.keras --dataset-root build/digits
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.measurements import build_result, collect_provenance
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.scenarios.cli import (
    REPORT_POSITIONALS,
    ClassArgument,
    add_evaluation_arguments,
    check_evaluation_arguments,
    parse_scenario_arguments,
    run_scenario,
)


def _own_arguments(group) -> None:
    add_evaluation_arguments(group, warmup=ModelWrapper.default_warmup)


def main(argv: Sequence[str] | None = None) -> None:
    args, classes = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [ClassArgument("modelwrappercls", ModelWrapper, "ModelWrapper class (dotted path)"),
         ClassArgument("datasetcls", Dataset, "Dataset class (dotted path)"), *REPORT_POSITIONALS],
        add_own=_own_arguments, argv=argv)
    check_evaluation_arguments(args)
    dataset = classes["datasetcls"].from_argparse(args)
    wrapper = classes["modelwrappercls"].from_argparse(dataset, args, from_file=True)
    quality, timing = wrapper.test_inference(split=args.split, warmup=args.warmup, max_samples=args.max_samples)
    described = dataset.describe(args.split)
    described["evaluated_sample_count"] = quality["sample_count"]
    document = build_result("inference_performance", wrapper.describe(), described, quality, timing,
                            collect_provenance(vars(args)))
    from edge_ai_lib.plots import write_run_outputs

    path, plots = write_run_outputs(Path(args.output), args.reportname, document)
    stats = document["performance"]["statistics"]
    print(f"{args.reportname}: accuracy {quality['accuracy']:.4f} on {quality['sample_count']} {args.split} samples; "
          f"latency median {stats['median'] * 1e3:.3f} ms, p99 {stats['p99'] * 1e3:.3f} ms, "
          f"{stats['samples_per_second']:.0f} samples/s")
    for warning in document["performance"]["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {path} and {len(plots)} plots")


if __name__ == "__main__":
    sys.exit(run_scenario(main))
