"""A small Keras CNN for the 8x8 digits."""

from __future__ import annotations

import keras

from edge_ai_lib.modelwrappers.frameworks.tensorflow import KerasModelWrapper


class TensorFlowDigitsCNN(KerasModelWrapper):
    """Two 3x3 convolutions, max pooling and two dense layers (about 38k parameters)."""

    def build_network(self) -> keras.Model:
        classes = len(self.get_class_names())
        return keras.Sequential([
            keras.Input(shape=(8, 8, 1), name="input"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(classes, activation="softmax"),
        ], name="digits_cnn")
