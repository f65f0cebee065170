"""Run a trained model with its own framework on this host: quality, speed, plots.

    python -m edge_ai_lib.scenarios.inference_performance WRAPPER DATASET REPORT_DIR REPORT_NAME \\
        --model-path build/digits.keras --dataset-root build/digits

Besides the quality and times, the result keeps each sample's predicted and true class (`outcomes`) and
the raw outputs (REPORT_NAME-outputs.npy): the framework model's own answers, which the report holds
every compiled variant against (accuracy change, top-1 agreement, largest output difference). The
workflow runs it for every model (rule evaluate_model) with --reference naming the model's config key.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.core.provenance import collect_provenance
from edge_ai_lib.core.results import build_result, outcomes_section, outputs_file_name
from edge_ai_lib.scenarios.cli import (
    EVALUATION_OPTIONS,
    REPORT_POSITIONALS,
    ClassArgument,
    check_evaluation_options,
    parse_scenario_arguments,
    run_scenario,
)
from edge_ai_lib.scenarios.outputs import finish_run

REFERENCE_OPTION = Argument("reference", str, None,
                            "The config key of the model this run is the framework reference of (the workflow "
                            "gives it; the report matches variants to it by this key)")


def main(argv: Sequence[str] | None = None) -> None:
    run = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [ClassArgument("model", ModelWrapper, "ModelWrapper class (dotted path)"),
         ClassArgument("dataset", Dataset, "Dataset class (dotted path)"), *REPORT_POSITIONALS],
        options=(*EVALUATION_OPTIONS, REFERENCE_OPTION), argv=argv)
    args = run.options
    check_evaluation_options(args)
    dataset = run.build("dataset")
    wrapper = run.build("model", dataset, True)
    evaluation = wrapper.evaluate(split=args.split, warmup=args.warmup, max_samples=args.max_samples)
    quality = evaluation["quality"]
    described = dataset.describe(args.split)
    described["evaluated_sample_count"] = quality["sample_count"]
    outputs_file = outputs_file_name(args.reportname)
    document = build_result("inference_performance", wrapper.describe(), described, quality, evaluation["timing"],
                            collect_provenance(run.spec),
                            extra={"outcomes": outcomes_section(evaluation["scores"], evaluation["labels"],
                                                                evaluation["outputs"], outputs_file),
                                   "reference": {"model": args.reference}})
    stats = document["performance"]["statistics"]
    finish_run(Path(args.output), args.reportname, document,
               f"{args.reportname}: accuracy {quality['accuracy']:.4f} on {quality['sample_count']} {args.split} "
               f"samples; latency median {stats['median'] * 1e3:.3f} ms, p99 {stats['p99'] * 1e3:.3f} ms, "
               f"{stats['samples_per_second']:.0f} samples/s", arrays={outputs_file: evaluation["outputs"]})


if __name__ == "__main__":
    sys.exit(run_scenario(main))
