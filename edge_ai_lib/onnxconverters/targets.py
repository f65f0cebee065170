"""What reads an exported ONNX file besides the frameworks: the checker, ONNX Runtime, TVM.

Each reuses the project's own runtime or compiler (`runtimes.onnxruntime`, `compilers.tvm` with
`runtimes.tvm`), so the grid says what the benchmarks would meet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_ai_lib.core.onnxconversion import ONNXTarget

DEFAULT_TARGETS = (
    "edge_ai_lib.onnxconverters.targets.ONNXChecker",
    "edge_ai_lib.onnxconverters.targets.ONNXRuntimeTarget",
    "edge_ai_lib.onnxconverters.targets.TVMTarget",
)


class ONNXChecker(ONNXTarget):
    """`onnx.checker` with `full_check` (shape inference included): the file is valid ONNX."""

    name = "onnx.checker"
    title = "onnx.checker"

    def run(self, onnx_path: Path, inputs: np.ndarray, workdir: Path) -> None:
        import onnx

        onnx.checker.check_model(str(onnx_path), full_check=True)
        return None


def _run_runtime(runtime, model_path: Path, inputs: np.ndarray) -> np.ndarray:
    runtime.load_model(model_path)
    runtime.set_inputs([inputs])
    runtime.invoke()
    return runtime.get_outputs()[0]


class ONNXRuntimeTarget(ONNXTarget):
    """The ONNX file run by ONNX Runtime on the CPU (the project's `ONNXRuntime`)."""

    name = "onnxruntime"
    title = "ONNX Runtime"

    def run(self, onnx_path: Path, inputs: np.ndarray, workdir: Path) -> np.ndarray:
        from edge_ai_lib.runtimes.onnxruntime import ONNXRuntime

        return _run_runtime(ONNXRuntime(save_model_path=workdir / "received.onnx"), onnx_path, inputs)


class TVMTarget(ONNXTarget):
    """The ONNX file imported by TVM's Relax frontend, compiled for this CPU and run
    (the project's `TVMCompiler` for the host, batch fixed to the inputs', then `TVMRuntime`)."""

    name = "tvm"
    title = "TVM"

    def run(self, onnx_path: Path, inputs: np.ndarray, workdir: Path) -> np.ndarray:
        from edge_ai_lib.compilers.tvm import TVMCompiler
        from edge_ai_lib.runtimes.tvm import TVMRuntime

        compiler = TVMCompiler(None, compiled_model_path=workdir / "model.so", architecture="host",
                               batch_size=int(inputs.shape[0]))
        library = compiler.compile(onnx_path)
        return _run_runtime(TVMRuntime(save_model_path=workdir / "received.so"), library, inputs)
