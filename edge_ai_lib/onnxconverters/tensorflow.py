"""Keras (TensorFlow) models through ONNX: Keras's own export, and back through onnx2tf into TFLite.

The applications are built with `weights=None` (no download) and `classifier_activation=None`, so the
outputs compared are logits; their inputs are images in 0..255 passed through each application's own
`preprocess_input`, the scale the model expects. The import is the TFLite compiler's onnx2tf path
(`compilers.tflite.TFLiteCompiler` with `model_framework="onnx"`), run by the project's TFLite runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.onnxconversion import ModelEntry, ONNXConversion

IMAGE = (64, 64, 3)


def _application(name: str):
    def build():
        import keras

        return getattr(keras.applications, name)(weights=None, input_shape=IMAGE, classes=1000,
                                                 classifier_activation=None)
    return build


def _images(module: str):
    """Images in 0..255 through `keras.applications.<module>.preprocess_input`."""
    def sample(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        import keras

        images = rng.uniform(0.0, 255.0, size=shape).astype(np.float32)
        return np.asarray(getattr(keras.applications, module).preprocess_input(images), dtype=np.float32)
    return sample


def _recurrent(layer: str):
    def build():
        import keras

        inputs = keras.Input((16, 8))
        x = getattr(keras.layers, layer)(32, return_sequences=True)(inputs)
        x = getattr(keras.layers, layer)(32)(x)
        return keras.Model(inputs, keras.layers.Dense(10)(x))
    return build


def attention_net():
    import keras

    inputs = keras.Input((12, 16))
    x = keras.layers.Dense(32)(inputs)
    attended = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8)(x, x)
    x = keras.layers.LayerNormalization()(x + attended)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def depthwise_net():
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.SeparableConv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def transposed_net():
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2DTranspose(16, 4, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.UpSampling2D(2)(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def calibrate_batchnorm(model: Any, inputs: np.ndarray) -> None:
    """Set every BatchNormalization's moving statistics to those of `inputs` (another seeded batch).

    Untrained, inference-mode BatchNorm normalises nothing (mean 0, variance 1), and through fifty
    layers of Keras's default initialisation the activations shrink to ~1e-12: the logits would be ~0
    and any converter within parity. With the statistics of real inputs the logits are of order 1, as
    in a trained net.
    """
    import keras

    layers, pending = [], [model]
    while pending:
        layer = pending.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layers.append(layer)
        pending.extend(getattr(layer, "layers", []))
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(inputs, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


class TensorFlowONNXConversion(ONNXConversion):
    """Keras 3 models: exported with `frameworks.tensorflow.export_onnx`, imported back through the
    TFLite compiler's onnx2tf path."""

    framework = "keras"
    import_name = "onnx2tf"
    import_title = "TensorFlow Lite (onnx2tf)"

    def prepare(self) -> None:
        self.model_list = [
            ModelEntry("mobilenetv2", _application("MobileNetV2"), IMAGE, _images("mobilenet_v2"),
                       "keras.applications, weights=None, 64x64"),
            ModelEntry("resnet50", _application("ResNet50"), IMAGE, _images("resnet50"),
                       "keras.applications, weights=None, 64x64"),
            ModelEntry("efficientnetb0", _application("EfficientNetB0"), IMAGE, _images("efficientnet"),
                       "keras.applications, weights=None, 64x64"),
            ModelEntry("densenet121", _application("DenseNet121"), IMAGE, _images("densenet"),
                       "keras.applications, weights=None, 64x64"),
            ModelEntry("lstm", _recurrent("LSTM"), (16, 8), description="2 stacked LSTM layers"),
            ModelEntry("gru", _recurrent("GRU"), (16, 8), description="2 stacked GRU layers"),
            ModelEntry("attention", attention_net, (12, 16), description="multi-head self-attention, LayerNorm"),
            ModelEntry("depthwise", depthwise_net, (32, 32, 3),
                       description="depthwise and separable convolutions, BatchNorm, ReLU6"),
            ModelEntry("transposed-conv", transposed_net, (32, 32, 3),
                       description="transposed convolution and upsampling"),
        ]

    def build_model(self, entry: ModelEntry) -> Any:
        import keras

        keras.utils.set_random_seed(self.seed)
        model = entry.build()
        calibration = entry.sample(np.random.default_rng(self.seed + 1), (32, *entry.input_shape))
        calibrate_batchnorm(model, np.asarray(calibration, dtype=np.float32))
        return model

    def run_model(self, model: Any, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(model(inputs, training=False))

    def onnx_export(self, model: Any, entry: ModelEntry, export_path: Path) -> None:
        from edge_ai_lib.modelwrappers.frameworks.tensorflow import export_onnx

        export_onnx(model, export_path)

    def onnx_import(self, import_path: Path, workdir: Path) -> Path:
        from edge_ai_lib.compilers.tflite import TFLiteCompiler

        compiler = TFLiteCompiler(None, compiled_model_path=Path(workdir) / "model.tflite", model_framework="onnx",
                                  target="float32")
        return compiler.compile(import_path)

    def run_imported(self, imported: Path, inputs: np.ndarray) -> np.ndarray:
        from edge_ai_lib.runtimes.tflite import TFLiteRuntime

        runtime = TFLiteRuntime(save_model_path=Path(imported).with_name("received.tflite"))
        runtime.load_model(imported)
        runtime.set_inputs([inputs])
        runtime.invoke()
        return runtime.get_outputs()[0]
