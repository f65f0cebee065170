"""Keras MobileNetV2 for the Oxford-IIIT Pet breeds."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import keras
import numpy as np

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

    Parameters
    ----------
    alpha : float
        Width multiplier of MobileNetV2 (0.35, 0.5, 0.75, 1.0, 1.3, 1.4).
    input_size : int | None
        Side of the input images; None takes the dataset's image size.
    weights : str
        "none" or the path of a Keras weights file of the backbone (no top).
    """

    def __init__(self, model_path: Path, dataset, from_file: bool = True, alpha: float = 1.0,
                 input_size: int | None = None, weights: str = "none", weights_sha256: str | None = None,
                 batchnorm_momentum: float = 0.9, dropout: float = 0.2):
        self.alpha = float(alpha)
        dataset_size = getattr(dataset, "image_size", None)
        if input_size is not None and dataset_size is not None and int(input_size) != dataset_size:
            raise ConfigurationError(f"the model's --input-size {input_size} differs from the dataset's "
                                     f"--image-size {dataset_size}: pass the same value to both")
        self.input_size = int(input_size or dataset_size or 224)
        self.weights = weights
        self.weights_sha256 = weights_sha256
        self.batchnorm_momentum = float(batchnorm_momentum)
        self.dropout = float(dropout)
        super().__init__(model_path, dataset, from_file)

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

    @classmethod
    def form_argparse(cls):
        parser, group = super().form_argparse()
        group = parser.add_argument_group("MobileNetV2 arguments")
        group.add_argument("--alpha", type=float, default=1.0, help="Width multiplier (default: %(default)s)")
        group.add_argument("--input-size", type=int, default=None,
                           help="Side of the input images (default: the dataset's --image-size)")
        group.add_argument("--weights", default="none",
                           help="'none' (random start) or the path of a local backbone weights file")
        group.add_argument("--weights-sha256", default=None, help="SHA-256 of the --weights file")
        group.add_argument("--batchnorm-momentum", type=float, default=0.9,
                           help="BatchNorm momentum (default: %(default)s)")
        return parser, group

    @classmethod
    def from_argparse(cls, dataset, args: argparse.Namespace, from_file: bool = True):
        return cls(args.model_path, dataset, from_file=from_file, alpha=args.alpha, input_size=args.input_size,
                   weights=args.weights, weights_sha256=args.weights_sha256,
                   batchnorm_momentum=args.batchnorm_momentum)
