"""TFLite compilation: Keras models directly, ONNX models (e.g. from PyTorch) through onnx2tf."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.compiler import ModelCompiler
from edge_ai_lib.core.errors import ConfigurationError, ConversionError, NotSupportedError
from edge_ai_lib.core.files import atomic_output, write_failure

TARGETS = ("float32", "float16", "int8", "edgetpu")
IO_TYPES = ("float32", "int8", "uint8")


class TFLiteCompiler(ModelCompiler):
    """Converts a model to `.tflite` for a target.

    Targets: float32; float16 (weights in half precision); int8 (full-integer post-training
    quantization calibrated on a representative set drawn from the dataset); edgetpu (int8, then
    `edgetpu_compiler`, which must be installed).

    A Keras model is converted directly; an ONNX model (e.g. a PyTorch model's export) goes through
    onnx2tf, keeping the ONNX input layout so the host's preprocessing is unchanged. Integer input and
    output types need the int8 or edgetpu target.
    """

    arguments_title = "TFLite compiler arguments"
    arguments = (
        Argument("model_framework", str, "auto", "Format of the input model; auto: the model's own when it is "
                 "keras, else its ONNX export", choices=("keras", "onnx", "auto")),
        Argument("target", str, "float32", "Target", choices=TARGETS),
        Argument("inference_input_type", str, "float32", "Type of the compiled model's inputs", choices=IO_TYPES),
        Argument("inference_output_type", str, "float32", "Type of the compiled model's outputs", choices=IO_TYPES),
        Argument("representative_samples", int, 100, "Training samples calibrating int8 quantization"),
    )
    accepted_frameworks = ("keras", "onnx")
    compiled_suffix = ".tflite"

    def __init__(self, dataset, compiled_model_path: Path | None = None, **settings: Any):
        super().__init__(dataset, compiled_model_path, **settings)
        for name, value in (("input", self.inference_input_type), ("output", self.inference_output_type)):
            if value != "float32" and self.target not in ("int8", "edgetpu"):
                raise ConfigurationError(f"--inference-{name}-type {value} needs --target int8 or edgetpu, "
                                         f"not {self.target}")

    def get_framework_and_version(self) -> tuple[str, str]:
        import tensorflow as tf

        return "tflite", tf.__version__

    def _saved_model(self, input_model_path: Path, directory: Path) -> Path:
        saved = directory / "saved_model"
        if self.model_framework == "keras":
            import keras

            model = keras.saving.load_model(input_model_path, compile=False)
            model.export(str(saved), format="tf_saved_model", verbose=False)
            return saved
        import onnx
        import onnx2tf

        # onnx2tf rewrites the ONNX file it is given (simplified in place): convert a private copy.
        source = directory / "source.onnx"
        shutil.copyfile(input_model_path, source)
        graph = onnx.load(str(source)).graph
        initializers = {i.name for i in graph.initializer}
        # onnx2tf keeps the layout of 3D to 5D inputs only (it refuses the option for other ranks).
        names = [i.name for i in graph.input if i.name not in initializers
                 and 3 <= len(i.type.tensor_type.shape.dim) <= 5]
        onnx2tf.convert(input_onnx_file_path=str(source), output_folder_path=str(saved),
                        keep_ncw_or_nchw_or_ncdhw_input_names=names, verbosity="error")
        return saved

    def compile(self, input_model_path: Path, wrapper: Any = None) -> Path:
        import tensorflow as tf

        input_model_path = Path(input_model_path)
        if not input_model_path.is_file():
            raise ConversionError(f"model file '{input_model_path}' does not exist: train or export it first")
        if self.model_framework == "auto":
            self.model_framework = "onnx" if input_model_path.suffix == ".onnx" else "keras"
        with tempfile.TemporaryDirectory(prefix="edge-ai-tflite-") as tmp:
            try:
                saved = self._saved_model(input_model_path, Path(tmp))
            except Exception as error:
                failure = write_failure(Path(tmp), error,
                                        "point TMPDIR at a file system with more space", certain=False)
                if failure is not None:
                    raise failure from error
                raise ConversionError(f"cannot read {input_model_path} as a {self.model_framework} model "
                                      f"({type(error).__name__}: {str(error)[:300]})") from error
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
            if self.target == "float16":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            elif self.target in ("int8", "edgetpu"):
                samples = self.representative_inputs(wrapper, self.representative_samples)
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = lambda: ([s] for s in samples)
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                types = {"float32": tf.float32, "int8": tf.int8, "uint8": tf.uint8}
                converter.inference_input_type = types[self.inference_input_type]
                converter.inference_output_type = types[self.inference_output_type]
            try:
                flatbuffer = converter.convert()
            except Exception as error:
                raise ConversionError(f"TFLite conversion of {input_model_path} for {self.target} failed "
                                      f"({type(error).__name__}: {str(error)[:300]})") from error
        with atomic_output(self.compiled_model_path, "pass another --compiled-model-path") as compiled:
            with open(compiled, "wb") as handle:
                handle.write(flatbuffer)
            if self.target == "edgetpu":
                self._edgetpu(compiled)
        return self.compiled_model_path

    def _edgetpu(self, quantized: Path) -> None:
        tool = shutil.which("edgetpu_compiler")
        if tool is None:
            raise NotSupportedError("--target edgetpu needs edgetpu_compiler, which is not installed: install it "
                                    "from Coral's Debian repository (x86-64 only) or use --target int8")
        with tempfile.TemporaryDirectory(prefix="edge-ai-edgetpu-") as out:
            result = subprocess.run([tool, "--out_dir", out, "--show_operations", str(quantized)],
                                    capture_output=True, text=True)
            produced = list(Path(out).glob("*_edgetpu.tflite"))
            if result.returncode != 0 or not produced:
                raise ConversionError(f"edgetpu_compiler failed ({result.returncode}): {result.stderr[-500:]}")
            shutil.move(str(produced[0]), quantized)
