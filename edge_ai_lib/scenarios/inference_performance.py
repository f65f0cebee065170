"""Run a trained model with its own framework on this host: quality, speed, plots.

    python -m edge_ai_lib.scenarios.inference_performance WRAPPER DATASET REPORT_DIR REPORT_NAME \\
        --model-path build/digits.keras --dataset-root build/digits
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.core.provenance import collect_provenance
from edge_ai_lib.core.results import build_result
from edge_ai_lib.scenarios.cli import (
    EVALUATION_OPTIONS,
    REPORT_POSITIONALS,
    ClassArgument,
    check_evaluation_options,
    parse_scenario_arguments,
    run_scenario,
)
from edge_ai_lib.scenarios.outputs import finish_run


def main(argv: Sequence[str] | None = None) -> None:
    run = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [ClassArgument("model", ModelWrapper, "ModelWrapper class (dotted path)"),
         ClassArgument("dataset", Dataset, "Dataset class (dotted path)"), *REPORT_POSITIONALS],
        options=EVALUATION_OPTIONS, argv=argv)
    args = run.options
    check_evaluation_options(args)
    dataset = run.build("dataset")
    wrapper = run.build("model", dataset, True)
    quality, timing = wrapper.test_inference(split=args.split, warmup=args.warmup, max_samples=args.max_samples)
    described = dataset.describe(args.split)
    described["evaluated_sample_count"] = quality["sample_count"]
    document = build_result("inference_performance", wrapper.describe(), described, quality, timing,
                            collect_provenance(run.spec))
    stats = document["performance"]["statistics"]
    finish_run(Path(args.output), args.reportname, document,
               f"{args.reportname}: accuracy {quality['accuracy']:.4f} on {quality['sample_count']} {args.split} "
               f"samples; latency median {stats['median'] * 1e3:.3f} ms, p99 {stats['p99'] * 1e3:.3f} ms, "
               f"{stats['samples_per_second']:.0f} samples/s")


if __name__ == "__main__":
    sys.exit(run_scenario(main))
