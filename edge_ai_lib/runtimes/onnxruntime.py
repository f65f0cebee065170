"""ONNX models on a board with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.errors import RuntimeFailure
from edge_ai_lib.core.provenance import physical_cores_available
from edge_ai_lib.core.runtime import Runtime, check_batch


class ONNXRuntime(Runtime):
    """Runs `.onnx` models (float, or int8 in QDQ form, whose inputs and outputs stay float).

    """

    arguments_title = "ONNX Runtime arguments"
    arguments = (Argument("execution_providers", str, ["CPUExecutionProvider"],
                          "Execution providers in order of preference", many=True),)

    def __init__(self, save_model_path: Path | None = None, **settings: Any):
        super().__init__(save_model_path, **settings)
        self.session = None

    def load_model(self, path: Path) -> None:
        import onnxruntime

        available = onnxruntime.get_available_providers()
        missing = [p for p in self.execution_providers if p not in available]
        if missing:
            raise RuntimeFailure(f"execution providers {missing} are not available on this board (available: "
                                 f"{available}): change --execution-providers")
        options = onnxruntime.SessionOptions()
        if self.num_threads:
            options.intra_op_num_threads = self.num_threads
            options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=self.execution_providers)
        except Exception as error:  # onnxruntime raises its own exception types
            raise RuntimeFailure(f"cannot load ONNX model {path} ({str(error)[:200]}): the file is corrupt or "
                                 "not an ONNX model; compile it again") from error
        self.inputs = self.session.get_inputs()
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.feed: dict[str, np.ndarray] = {}
        self.results: list[np.ndarray] = []

    def set_inputs(self, tensors: list[np.ndarray]) -> None:
        if len(tensors) != len(self.inputs):
            raise RuntimeFailure(f"the model takes {len(self.inputs)} inputs, DATA carried {len(tensors)}")
        feed = {}
        for spec, tensor in zip(self.inputs, tensors):
            check_batch(tensor, [d if isinstance(d, int) else -1 for d in spec.shape], spec.name)
            feed[spec.name] = np.array(tensor, dtype=np.float32)  # an owned copy, as a board receives it
        self.feed = feed

    def invoke(self) -> None:
        self.results = self.session.run(self.output_names, self.feed)

    def get_outputs(self) -> list[np.ndarray]:
        return self.results

    def get_framework_and_version(self) -> tuple[str, str]:
        import onnxruntime

        return "onnxruntime", onnxruntime.__version__

    def threads_in_use(self) -> int | None:
        """`num_threads`, else ONNX Runtime's default: one intra-op thread per physical core it may use."""
        configured = self.session.get_session_options().intra_op_num_threads if self.session else 0
        if configured > 0:
            return configured
        return physical_cores_available()

    def describe_io(self) -> dict[str, Any]:
        def describe(spec):
            return {"name": spec.name, "shape": [d if isinstance(d, int) else -1 for d in spec.shape],
                    "dtype": spec.type}
        return {"input": [describe(s) for s in self.inputs],
                "output": [describe(s) for s in self.session.get_outputs()],
                "providers": self.session.get_providers()}
