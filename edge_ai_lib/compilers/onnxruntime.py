"""ONNX Runtime "compilation": graph optimisation and optional int8 quantization of an ONNX model."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.compiler import ModelCompiler
from edge_ai_lib.core.errors import ConversionError, EdgeAIError
from edge_ai_lib.core.files import atomic_output, write_failure

OPTIMIZATION_LEVELS = ("disabled", "basic", "extended", "all")
QUANTIZATION = ("none", "dynamic", "static")


class ONNXRuntimeCompiler(ModelCompiler):
    """Writes an ONNX model optimised (and optionally quantized) by ONNX Runtime.

    Parameters
    ----------
    optimization_level : str
        ONNX Runtime graph optimisation level applied offline. "all" adds layout changes that tie the
        model to the machine that optimised it; "extended" (the default) stays portable across CPUs.
    quantization : str
        "none"; "dynamic" (int8 weights, activations quantized at run time); "static" (int8 weights
        and activations in QDQ form, calibrated on representative samples from the dataset).
    """

    arguments_title = "ONNX Runtime compiler arguments"
    arguments = (
        Argument("optimization_level", str, "extended", "Graph optimisation level", choices=OPTIMIZATION_LEVELS),
        Argument("quantization", str, "none", "int8 quantization", choices=QUANTIZATION),
        Argument("representative_samples", int, 100, "Training samples calibrating static quantization"),
        Argument("per_channel", bool, True, "Per-channel weight quantization"),
    )
    accepted_frameworks = ("onnx",)
    compiled_suffix = ".onnx"

    def get_framework_and_version(self) -> tuple[str, str]:
        import onnxruntime

        return "onnxruntime", onnxruntime.__version__

    def _quantize(self, source: Path, target: Path, wrapper: Any) -> None:
        from onnxruntime import quantization as q
        from onnxruntime.quantization.shape_inference import quant_pre_process

        prepared = target.with_name("prepared.onnx")
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        if self.quantization == "dynamic":
            q.quantize_dynamic(str(prepared), str(target), weight_type=q.QuantType.QInt8, per_channel=self.per_channel)
            return
        samples = self.representative_inputs(wrapper, self.representative_samples)
        import onnx

        graph = onnx.load(str(prepared)).graph
        initializers = {i.name for i in graph.initializer}
        input_name = next(i.name for i in graph.input if i.name not in initializers)

        class Reader(q.CalibrationDataReader):
            def __init__(self):
                self.iterator = iter({input_name: s} for s in samples)

            def get_next(self):
                return next(self.iterator, None)

        q.quantize_static(str(prepared), str(target), Reader(), quant_format=q.QuantFormat.QDQ,
                          activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                          per_channel=self.per_channel)

    def compile(self, input_model_path: Path, wrapper: Any = None) -> Path:
        import onnxruntime

        input_model_path = Path(input_model_path)
        if not input_model_path.is_file():
            raise ConversionError(f"model file '{input_model_path}' does not exist: train or export it first")
        levels = {"disabled": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL}
        elsewhere = "pass another --compiled-model-path"
        try:
            # Quantization intermediates stay in the temporary directory; the optimised model is written
            # straight beside its destination, so the final rename never crosses file systems.
            with tempfile.TemporaryDirectory(prefix="edge-ai-ort-") as tmp, \
                    atomic_output(self.compiled_model_path, elsewhere) as optimised:
                source = input_model_path
                if self.quantization != "none":
                    source = Path(tmp) / "quantized.onnx"
                    try:
                        self._quantize(input_model_path, source, wrapper)
                    except Exception as error:
                        failure = write_failure(Path(tmp), error, "point TMPDIR at a file system with more space",
                                                certain=False)
                        if failure is not None:
                            raise failure from error
                        raise
                options = onnxruntime.SessionOptions()
                options.graph_optimization_level = levels[self.optimization_level]
                options.optimized_model_filepath = str(optimised)
                onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        except EdgeAIError:
            raise
        except Exception as error:
            raise ConversionError(f"ONNX Runtime could not compile {input_model_path} "
                                  f"({type(error).__name__}: {str(error)[:300]})") from error
        return self.compiled_model_path
