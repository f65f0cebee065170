"""Export every model of the conversions to ONNX, read each file back everywhere, and write the support grid.

    python -m edge_ai_lib.scenarios.onnx_conversion ONNX_MODELS_DIR GRID.rst --converters-list \\
        edge_ai_lib.onnxconverters.pytorch.PyTorchONNXConversion \\
        edge_ai_lib.onnxconverters.tensorflow.TensorFlowONNXConversion

Writes GRID.rst, GRID.json beside it (every number), and the ONNX files (with each model's reference
inputs and outputs, and one log per step) into ONNX_MODELS_DIR. Every step runs in a child process
with a timeout and a memory cap: a failing, crashing or hanging converter is one cell, and the grid goes on.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.errors import ConfigurationError
from edge_ai_lib.core.onnxconversion import check_conversions
from edge_ai_lib.onnxconverters.grid import DEFAULT_CONVERSIONS, write_grid
from edge_ai_lib.onnxconverters.targets import DEFAULT_TARGETS
from edge_ai_lib.scenarios.cli import PlainArgument, parse_scenario_arguments, run_scenario

OPTIONS = (
    Argument("converters_list", str, list(DEFAULT_CONVERSIONS), "ONNXConversion classes whose models are the rows",
             many=True),
    Argument("importers_list", str, list(DEFAULT_CONVERSIONS), "ONNXConversion classes whose imports are "
             "columns: every model is imported by each", many=True),
    Argument("targets_list", str, list(DEFAULT_TARGETS), "ONNXTarget classes that are columns (checker, "
             "runtimes, compilers)", many=True),
    Argument("models", str, None, "Only these models (NAME or FRAMEWORK:NAME); default: every listed model",
             many=True),
    Argument("timeout", float, 600.0, "Seconds one step may take before it is killed and marked timeout"),
    Argument("memory_limit_mb", int, 12288, "Address-space cap of each step's process in MiB (RLIMIT_AS); 0: none"),
)


def main(argv: Sequence[str] | None = None) -> None:
    run = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [PlainArgument("onnx_models_dir", "Directory of the exported ONNX models (and the steps' logs)"),
         PlainArgument("output", "The RST grid; the JSON with every number is written beside it")],
        options=OPTIONS, argv=argv)
    args = run.options
    if args.timeout <= 0:
        raise ConfigurationError(f"--timeout must be above 0 seconds, not {args.timeout:g}")
    if args.memory_limit_mb < 0:
        raise ConfigurationError(f"--memory-limit-mb must be 0 (no cap) or more, not {args.memory_limit_mb}")
    if not args.converters_list:
        raise ConfigurationError("--converters-list is empty: name at least one ONNXConversion class")
    grid = check_conversions(args.converters_list, Path(args.onnx_models_dir), targets=args.targets_list,
                             importers=args.importers_list, models=args.models, timeout=args.timeout,
                             memory_limit_mb=args.memory_limit_mb or None,
                             progress=lambda line: print(line, flush=True))
    rst, json_file = write_grid(grid, Path(args.output))
    counts = grid.counts()
    summary = ", ".join(f"{column.name} {counts[column.name]}" for column in grid.columns)
    print(f"wrote {rst} and {json_file}: {counts['models']} models in {grid.seconds:.0f} s; {summary}")


if __name__ == "__main__":
    sys.exit(run_scenario(main))
