"""TFLite models on a board: the LiteRT interpreter, else tflite_runtime, else TensorFlow's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.errors import RuntimeFailure
from edge_ai_lib.core.runtime import Runtime, check_batch


def _interpreter_module() -> tuple[Any, Any, str, str]:
    """(Interpreter class, load_delegate, package name, version) of the first interpreter found."""
    try:
        from importlib.metadata import version

        from ai_edge_litert.interpreter import Interpreter, load_delegate
        return Interpreter, load_delegate, "ai-edge-litert", version("ai-edge-litert")
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        from tflite_runtime.interpreter import Interpreter, load_delegate
        return Interpreter, load_delegate, "tflite-runtime", version("tflite-runtime")
    except ImportError:
        pass
    try:
        import tensorflow as tf
        return tf.lite.Interpreter, tf.lite.experimental.load_delegate, "tensorflow", tf.__version__
    except ImportError as error:
        raise RuntimeFailure("no TFLite interpreter is installed: pip install 'edge_ai_lib[litert]'") from error


def quantize(values: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (values.astype(np.float32) - zero_point) * np.float32(scale)


class TFLiteRuntime(Runtime):
    """Runs `.tflite` models; int8/uint8 inputs and outputs are (de)quantized with the model's parameters.

    """

    arguments_title = "TFLite runtime arguments"
    arguments = (Argument("delegates_list", str, [], "TFLite delegate libraries (e.g. libedgetpu.so.1)", many=True),)

    def __init__(self, save_model_path: Path | None = None, **settings: Any):
        super().__init__(save_model_path, **settings)
        self.interpreter = None

    def load_model(self, path: Path) -> None:
        interpreter_class, load_delegate, _, _ = _interpreter_module()
        delegates = []
        for library in self.delegates_list:
            try:
                delegates.append(load_delegate(library))
            except (ValueError, OSError) as error:
                raise RuntimeFailure(f"cannot load TFLite delegate '{library}' ({error}): install it on the board "
                                     "or drop it from --delegates-list") from error
        try:
            interpreter = interpreter_class(model_path=str(path), experimental_delegates=delegates or None,
                                            num_threads=self.num_threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise RuntimeFailure(f"cannot load TFLite model {path} ({str(error)[:200]}): the file is corrupt or "
                                 "not a .tflite model; compile it again") from error
        self.interpreter = interpreter
        self.input_details = interpreter.get_input_details()
        self.output_details = interpreter.get_output_details()

    def set_inputs(self, tensors: list[np.ndarray]) -> None:
        if len(tensors) != len(self.input_details):
            raise RuntimeFailure(f"the model takes {len(self.input_details)} inputs, DATA carried {len(tensors)}")
        resized = False
        for detail, tensor in zip(self.input_details, tensors):
            check_batch(tensor, [int(d) for d in detail["shape_signature"]], detail["name"])
            if tuple(detail["shape"]) != tensor.shape:
                self.interpreter.resize_tensor_input(detail["index"], list(tensor.shape))
                resized = True
        if resized:
            self.interpreter.allocate_tensors()
            self.input_details = self.interpreter.get_input_details()
            self.output_details = self.interpreter.get_output_details()
        for detail, tensor in zip(self.input_details, tensors):
            if detail["dtype"] in (np.int8, np.uint8):
                scale, zero_point = detail["quantization"]
                tensor = quantize(tensor, detail["dtype"], scale, zero_point)
            self.interpreter.set_tensor(detail["index"], tensor.astype(detail["dtype"], copy=False))

    def invoke(self) -> None:
        self.interpreter.invoke()

    def get_outputs(self) -> list[np.ndarray]:
        outputs = []
        for detail in self.output_details:
            value = self.interpreter.get_tensor(detail["index"])
            if detail["dtype"] in (np.int8, np.uint8):
                value = dequantize(value, *detail["quantization"])
            outputs.append(value)
        return outputs

    def get_framework_and_version(self) -> tuple[str, str]:
        _, _, name, version = _interpreter_module()
        return name, version

    def threads_in_use(self) -> int | None:
        """`num_threads`, else 1: without it the interpreter (and its XNNPACK delegate) runs on one thread."""
        return self.num_threads if self.num_threads and self.num_threads > 0 else 1

    def describe_io(self) -> dict[str, Any]:
        def describe(detail):
            return {"name": detail["name"], "shape": [int(d) for d in detail["shape_signature"]],
                    "dtype": np.dtype(detail["dtype"]).name, "quantization": [float(q) for q in detail["quantization"]]}
        return {"input": [describe(d) for d in self.input_details],
                "output": [describe(d) for d in self.output_details]}
