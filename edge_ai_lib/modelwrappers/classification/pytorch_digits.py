"""A small PyTorch CNN for the 8x8 digits, the same architecture as the Keras one."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edge_ai_lib.modelwrappers.frameworks.pytorch import PyTorchModelWrapper


class PyTorchDigitsCNN(PyTorchModelWrapper):
    """Two 3x3 convolutions, max pooling and two dense layers; takes NCHW (N, 1, 8, 8) inputs."""

    def build_network(self) -> torch.nn.Module:
        classes = len(self.get_class_names())
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(32 * 4 * 4, 64), torch.nn.ReLU(),
            torch.nn.Linear(64, classes),
        )

    def preprocess_input(self, inputs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(inputs.transpose(0, 3, 1, 2))

    def get_io_specification(self) -> dict[str, list[dict[str, Any]]]:
        classes = len(self.get_class_names())
        return {"input": [{"name": "input", "shape": [-1, 1, 8, 8], "dtype": "float32"}],
                "output": [{"name": "output", "shape": [-1, classes], "dtype": "float32"}]}
