"""Compile a trained model for a target without running it.

    python -m edge_ai_lib.scenarios.model_compilation WRAPPER COMPILER DATASET \\
        --model-path build/digits.keras --compiled-model-path build/digits.tflite [compiler arguments]

Writes the compiled model and, beside it, `<compiled model>.json` describing the compilation. A model
the compiler cannot take (an operator it lacks) is not an error of the step: the record then holds
the failure, no compiled model is written, and the benchmark of this model makes a failed run of it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.compiler import ModelCompiler
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import UnsupportedModelError
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.core.provenance import collect_provenance
from edge_ai_lib.scenarios.cli import (
    ClassArgument,
    parse_scenario_arguments,
    run_scenario,
)


OPTIONS = (Argument("source_model", Path, None,
                    "The file to compile (e.g. the model's ONNX export) instead of deriving it from --model-path"),)


def main(argv: Sequence[str] | None = None) -> None:
    run = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [ClassArgument("model", ModelWrapper, "ModelWrapper class (dotted path)"),
         ClassArgument("compiler", ModelCompiler, "ModelCompiler class (dotted path)"),
         ClassArgument("dataset", Dataset, "Dataset class (dotted path)")], options=OPTIONS, argv=argv)
    dataset = run.build("dataset")
    wrapper = run.build("model", dataset, True)
    compiler = run.build("compiler", dataset)
    source = Path(run.options.source_model) if run.options.source_model else None
    try:
        described = compiler.compile_model(wrapper, source, provenance=collect_provenance(run.spec))
    except UnsupportedModelError as error:
        compiler.record_failure(error, source, provenance=collect_provenance(run.spec))
        print(f"error: {error}", file=sys.stderr)
        print(f"recorded the failure in {compiler.description_path}: the benchmarks of this model with this "
              "compiler are failed runs", file=sys.stderr)
        return
    print(f"wrote {compiler.compiled_model_path} ({described['size_bytes']} bytes) in "
          f"{described['compile_seconds']:.1f} s")


if __name__ == "__main__":
    sys.exit(run_scenario(main))
