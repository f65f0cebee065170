"""Compile a trained model for a target without running it.

    python -m edge_ai_lib.scenarios.model_compilation WRAPPER COMPILER DATASET \\
        --model-path build/digits.keras --compiled-model-path build/digits.tflite [compiler arguments]

Writes the compiled model and, beside it, `<compiled model>.json` describing the compilation.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Sequence

from edge_ai_lib.core.compiler import ModelCompiler
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.files import atomic_write_text
from edge_ai_lib.core.measurements import collect_provenance
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.scenarios.cli import ClassArgument, parse_scenario_arguments, run_scenario


def compile_model(wrapper: ModelWrapper, compiler: ModelCompiler, source: Path | None = None,
                  provenance: dict | None = None) -> dict:
    """Compile `wrapper`'s model (or `source`, e.g. its ONNX export) with `compiler`; returns the
    compiler's description with timings.

    The description is also written beside the compiled model (`<compiled model>.json`), last: it
    is the record that the compilation finished, so when it cannot be written the compiled model
    this call wrote is removed too.
    """
    start = time.perf_counter()
    source = Path(source) if source is not None else compiler.source_model(wrapper)
    compiled = compiler.compile(source, wrapper)
    described = compiler.describe()
    described.update({"source_model": str(source), "compile_seconds": time.perf_counter() - start})
    if provenance is not None:
        described["provenance"] = provenance
    try:
        atomic_write_text(sidecar_path(compiled), json.dumps(described, indent=2) + "\n",
                          elsewhere="pass another --compiled-model-path")
    except BaseException:
        compiled.unlink(missing_ok=True)
        raise
    return described


def sidecar_path(compiled_model_path: Path) -> Path:
    """Where the description of a compiled model is kept: `<compiled model>.json`."""
    compiled_model_path = Path(compiled_model_path)
    return compiled_model_path.with_name(compiled_model_path.name + ".json")


def _own_arguments(group) -> None:
    group.add_argument("--source-model", type=Path, default=None,
                       help="The file to compile (e.g. the model's ONNX export) instead of deriving it from "
                            "--model-path")


def main(argv: Sequence[str] | None = None) -> None:
    args, classes = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [ClassArgument("modelwrappercls", ModelWrapper, "ModelWrapper class (dotted path)"),
         ClassArgument("compilercls", ModelCompiler, "ModelCompiler class (dotted path)"),
         ClassArgument("datasetcls", Dataset, "Dataset class (dotted path)")], add_own=_own_arguments, argv=argv)
    dataset = classes["datasetcls"].from_argparse(args)
    wrapper = classes["modelwrappercls"].from_argparse(dataset, args, from_file=True)
    compiler = classes["compilercls"].from_argparse(dataset, args)
    described = compile_model(wrapper, compiler, args.source_model, provenance=collect_provenance(vars(args)))
    print(f"wrote {compiler.compiled_model_path} ({described['size_bytes']} bytes) in "
          f"{described['compile_seconds']:.1f} s")


if __name__ == "__main__":
    sys.exit(run_scenario(main))
