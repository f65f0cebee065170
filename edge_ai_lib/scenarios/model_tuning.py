"""Tune a model for a target (e.g. TVM's MetaSchedule) into a tuning database, without compiling it.

    python -m edge_ai_lib.scenarios.model_tuning WRAPPER COMPILER DATASET --model-path build/digits.pt \\
        --compiled-model-path build/digits.so --source-model build/digits.onnx --tuning-trials 64 \\
        --tuning-database build/digits-tuning

Writes the compiler's tuning database (for TVM: MetaSchedule's database files and tuning.json, which
says what the database was made for, how many trials it measured and how long it took). A database
made for the same model, target and budget is kept as it is. A model the compiler cannot take is
recorded in tuning.json, and its compilation records the failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.compiler import ModelCompiler
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import ConfigurationError, UnsupportedModelError
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.scenarios.cli import ClassArgument, parse_scenario_arguments, run_scenario

OPTIONS = (Argument("source_model", Path, None,
                    "The file to tune (e.g. the model's ONNX export) instead of deriving it from --model-path"),)


def main(argv: Sequence[str] | None = None) -> None:
    run = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [ClassArgument("model", ModelWrapper, "ModelWrapper class (dotted path)"),
         ClassArgument("compiler", ModelCompiler, "ModelCompiler class (dotted path)"),
         ClassArgument("dataset", Dataset, "Dataset class (dotted path)")], options=OPTIONS, argv=argv)
    dataset = run.build("dataset")
    compiler = run.build("compiler", dataset)
    if not hasattr(compiler, "tune"):
        raise ConfigurationError(f"{type(compiler).__name__} does not tune: compile with model_compilation")
    if run.options.source_model:
        source = Path(run.options.source_model)
    else:
        source = compiler.source_model(run.build("model", dataset, True))
    try:
        record = compiler.tune(source)
    except UnsupportedModelError as error:
        directory = compiler.database_directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "tuning.json").write_text(json.dumps({"failure": str(error)}, indent=2) + "\n")
        print(f"error: {error}; not tuned (its compilation records the failure)", file=sys.stderr)
        return
    print(f"tuning database {compiler.database_directory}: {record['trials']} measured trials, "
          f"{record['seconds']:.0f} s" + (", stopped by the time cap" if record.get("capped") else "")
          + (" (made earlier for this model, target and budget: reused)" if record.get("reused") else ""))


if __name__ == "__main__":
    sys.exit(run_scenario(main))
