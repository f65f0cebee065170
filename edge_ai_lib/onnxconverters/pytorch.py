"""PyTorch models through ONNX: export with the framework's one export, import with onnx2torch.

The models are built from `torch.nn` (torchvision does not import beside the CPU torch here), with
fixed seeds and logits as outputs. BatchNorm layers get random running statistics and affine
parameters, so that in eval mode they compute something a converter can get wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.onnxconversion import ModelEntry, ONNXConversion


def _randomize_batchnorm(module):
    import torch

    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                layer.running_mean.uniform_(-0.5, 0.5)
                layer.running_var.uniform_(0.5, 2.0)
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.uniform_(-0.5, 0.5)
    return module


def _conv_bn(inputs: int, outputs: int, stride: int = 1, groups: int = 1, activation=None):
    from torch import nn

    layers = [nn.Conv2d(inputs, outputs, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(outputs)]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


def resnet_cnn():
    """Three stages of residual blocks (conv-BN-ReLU, identity or 1x1 projection shortcuts)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, inputs, outputs, stride):
            super().__init__()
            self.body = nn.Sequential(_conv_bn(inputs, outputs, stride, activation=nn.ReLU),
                                      _conv_bn(outputs, outputs))
            self.shortcut = nn.Identity() if stride == 1 and inputs == outputs else nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    return nn.Sequential(_conv_bn(3, 16, activation=nn.ReLU), Block(16, 16, 1), Block(16, 32, 2),
                         Block(32, 64, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def mobilenet_cnn():
    """Inverted residual blocks: 1x1 expansion, 3x3 depthwise, 1x1 projection, ReLU6, BatchNorm."""
    from torch import nn

    class InvertedResidual(nn.Module):
        def __init__(self, inputs, outputs, stride, expansion=4):
            super().__init__()
            hidden = inputs * expansion
            self.residual = stride == 1 and inputs == outputs
            self.body = nn.Sequential(
                nn.Conv2d(inputs, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
                _conv_bn(hidden, hidden, stride, groups=hidden, activation=nn.ReLU6),
                nn.Conv2d(hidden, outputs, 1, bias=False), nn.BatchNorm2d(outputs))

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    return nn.Sequential(_conv_bn(3, 16, 2, activation=nn.ReLU6), InvertedResidual(16, 16, 1),
                         InvertedResidual(16, 24, 2), InvertedResidual(24, 24, 1), InvertedResidual(24, 32, 2),
                         nn.Conv2d(32, 128, 1), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(128, 10))


def _recurrent(cell: str):
    from torch import nn

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(nn, cell)(input_size=8, hidden_size=32, num_layers=2, batch_first=True)
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            sequence, _ = self.rnn(x)
            return self.head(sequence[:, -1])

    return Recurrent()


def transformer_encoder():
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(16, 32)
            layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, dropout=0.1,
                                               batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            return self.head(self.encoder(self.embed(x)).mean(dim=1))

    return Encoder()


def upsampling_net():
    """Down with strided convolutions, up with a transposed convolution and nearest/bilinear upsampling."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(16, 8, 3, 1, 1), nn.ReLU(), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(8, 4, 3, 2, 1), nn.Flatten(), nn.Linear(4 * 32 * 32, 10))


def batchnorm_dropout_net():
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Dropout2d(0.3),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 8 * 8, 64), nn.BatchNorm1d(64), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(64, 10))


def mlp():
    from torch import nn

    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


class PyTorchONNXConversion(ONNXConversion):
    """PyTorch (`torch.nn`) models: exported with `frameworks.pytorch.export_onnx`, imported back with
    `frameworks.pytorch.import_onnx` (onnx2torch)."""

    framework = "pytorch"
    import_name = "onnx2torch"
    import_title = "PyTorch (onnx2torch)"

    def prepare(self) -> None:
        image = (3, 32, 32)
        self.model_list = [
            ModelEntry("resnet-cnn", resnet_cnn, image, description="residual CNN, BatchNorm"),
            ModelEntry("mobilenet-cnn", mobilenet_cnn, image, description="inverted residuals, depthwise, ReLU6"),
            ModelEntry("lstm", lambda: _recurrent("LSTM"), (16, 8), description="2-layer LSTM, last step"),
            ModelEntry("gru", lambda: _recurrent("GRU"), (16, 8), description="2-layer GRU, last step"),
            ModelEntry("transformer-encoder", transformer_encoder, (12, 16),
                       description="2 TransformerEncoder layers, 4 heads"),
            ModelEntry("upsampling", upsampling_net, image,
                       description="transposed convolution, nearest and bilinear upsampling"),
            ModelEntry("batchnorm-dropout", batchnorm_dropout_net, (3, 16, 16),
                       description="BatchNorm and Dropout in eval mode"),
            ModelEntry("mlp", mlp, (64,), description="3 linear layers"),
        ]

    def build_model(self, entry: ModelEntry) -> Any:
        import torch

        torch.manual_seed(self.seed)
        return _randomize_batchnorm(entry.build()).eval()

    def run_model(self, model: Any, inputs: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return model(torch.from_numpy(inputs)).numpy()

    def onnx_export(self, model: Any, entry: ModelEntry, export_path: Path) -> None:
        import torch

        from edge_ai_lib.modelwrappers.frameworks.pytorch import export_onnx

        export_onnx(model, torch.zeros((1, *entry.input_shape)), export_path)

    def onnx_import(self, import_path: Path, workdir: Path) -> Any:
        from edge_ai_lib.modelwrappers.frameworks.pytorch import import_onnx

        return import_onnx(import_path)

    def run_imported(self, imported: Any, inputs: np.ndarray) -> np.ndarray:
        return self.run_model(imported, inputs)
