"""Keras MobileNetV2 for the Oxford-IIIT Pet breeds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import numpy as np

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.errors import ConfigurationError, ModelLoadError
from edge_ai_lib.modelwrappers.frameworks.tensorflow import KerasModelWrapper


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class TensorFlowPetDatasetMobileNetV2(KerasModelWrapper):
    """MobileNetV2 backbone, global average pooling, dropout and a softmax head.

    Nothing is downloaded: the backbone starts from random weights (`weights="none"`) or from a
    local weights file whose SHA-256 must match `weights_sha256` (or a `<file>.sha256` beside it).
    BatchNorm momentum is lowered (0.9 by default) so that short trainings give usable
    inference-mode statistics.

    The input size defaults to the dataset's image size and must equal it when both are given.
    """

    arguments_title = "MobileNetV2 arguments"
    arguments = (
        Argument("alpha", float, 1.0, "Width multiplier of MobileNetV2 (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)"),
        Argument("input_size", int, None, "Side of the input images (default: the dataset's image size)"),
        Argument("weights", str, "none", "'none' (random start) or the path of a local backbone weights file"),
        Argument("weights_sha256", str, None, "SHA-256 of the weights file"),
        Argument("batchnorm_momentum", float, 0.9, "BatchNorm momentum"),
        Argument("dropout", float, 0.2, "Dropout before the classification head"),
    )

    def prepare_model(self) -> None:
        dataset_size = getattr(self.dataset, "image_size", None)
        if self.input_size is not None and dataset_size is not None and self.input_size != dataset_size:
            raise ConfigurationError(f"the model's input_size {self.input_size} differs from the dataset's "
                                     f"image_size {dataset_size}: give both the same value")
        self.input_size = int(self.input_size or dataset_size or 224)
        super().prepare_model()

    def _check_weights(self) -> Path:
        path = Path(self.weights)
        if not path.is_file():
            raise ModelLoadError(f"weights file '{path}' does not exist: pass --weights none or the path of a "
                                 "local MobileNetV2 weights file (nothing is downloaded at run time)")
        expected = self.weights_sha256
        sidecar = path.with_name(path.name + ".sha256")
        if expected is None and sidecar.is_file():
            expected = sidecar.read_text().split()[0]
        if expected is None:
            raise ModelLoadError(f"no checksum for weights file '{path}': pass --weights-sha256 or put its "
                                 f"SHA-256 in {sidecar.name}")
        actual = _sha256(path)
        if actual.lower() != expected.lower():
            raise ModelLoadError(f"weights file '{path}' has SHA-256 {actual}, expected {expected}: the file is "
                                 "corrupt or not the one meant")
        return path

    def build_network(self) -> keras.Model:
        shape = (self.input_size, self.input_size, 3)
        backbone = keras.applications.MobileNetV2(input_shape=shape, alpha=self.alpha, include_top=False,
                                                  weights=None)
        if self.weights != "none":
            backbone.load_weights(self._check_weights())
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = self.batchnorm_momentum
        inputs = keras.Input(shape=shape, name="input")
        features = backbone(inputs)
        pooled = keras.layers.GlobalAveragePooling2D()(features)
        pooled = keras.layers.Dropout(self.dropout)(pooled)
        outputs = keras.layers.Dense(len(self.get_class_names()), activation="softmax")(pooled)
        return keras.Model(inputs, outputs, name=f"mobilenetv2_{self.alpha}_{self.input_size}")

    def preprocess_input(self, inputs: np.ndarray) -> np.ndarray:
        return inputs * 2.0 - 1.0  # MobileNetV2 expects [-1, 1]
