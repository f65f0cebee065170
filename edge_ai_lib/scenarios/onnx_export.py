"""Export a trained model to ONNX and check it against the framework with onnxruntime.

    python -m edge_ai_lib.scenarios.onnx_export WRAPPER --model-path build/digits.pt --onnx-path build/digits.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.errors import ConversionError
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.scenarios.cli import (
    ClassArgument,
    parse_scenario_arguments,
    run_scenario,
)

OPTIONS = (
    Argument("onnx_path", Path, help="Where the ONNX model is written"),
    Argument("tolerance", float, 1e-4, "Largest absolute difference allowed between ONNX and framework outputs"),
    Argument("check", bool, True, "Check the parity of the export with onnxruntime"),
)


def onnx_parity(wrapper: ModelWrapper, onnx_path: Path, batch: int = 4, seed: int = 0) -> float:
    """Largest absolute difference between the framework and onnxruntime on seeded random inputs."""
    import onnxruntime

    spec = wrapper.get_io_specification()["input"][0]
    inputs = np.random.default_rng(seed).random([batch] + spec["shape"][1:], dtype=np.float32)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_output = session.run(None, {session.get_inputs()[0].name: inputs})[0]
    framework_output = wrapper.to_numpy_output(wrapper.run_inference(wrapper.to_framework_input(inputs)))
    return float(np.max(np.abs(onnx_output - framework_output)))


def main(argv: Sequence[str] | None = None) -> None:
    run = parse_scenario_arguments(
        __doc__.splitlines()[0], [ClassArgument("model", ModelWrapper, "ModelWrapper class (dotted path)")],
        options=OPTIONS, argv=argv)
    args = run.options
    args.onnx_path = Path(args.onnx_path)
    wrapper = run.build("model", None, True)
    wrapper.save_to_onnx(args.onnx_path)
    if not args.check:
        print(f"wrote {args.onnx_path}")
        return
    difference = onnx_parity(wrapper, args.onnx_path)
    if difference > args.tolerance:
        raise ConversionError(f"the ONNX export differs from the framework by {difference:.3g} (> --tolerance "
                                 f"{args.tolerance:g}): the exporter changed the model's numerics; the file is kept "
                                 f"at {args.onnx_path} for inspection")
    print(f"wrote {args.onnx_path}: max |onnx - framework| = {difference:.3g}")


if __name__ == "__main__":
    sys.exit(run_scenario(main))
