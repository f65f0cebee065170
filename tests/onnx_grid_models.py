"""Conversions for tests/test_onnx_grid.py, importable by the grid's child processes.

Real PyTorch models and the real exporter; one model the exporter cannot take (an FFT, which opset 17
lacks), one whose build kills its process with a real segmentation fault, and the MLP with one weight
changed after its export (a negative control of the parity check).
"""

from __future__ import annotations

import faulthandler
from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.onnxconversion import ModelEntry
from edge_ai_lib.onnxconverters.pytorch import PyTorchONNXConversion, mlp


def spectrum_net():
    import torch

    class Spectrum(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(33, 10)

        def forward(self, x):
            return self.head(torch.fft.rfft(x).abs())

    return Spectrum()


def segfault():
    faulthandler.disable()  # a quiet death: no traceback dump in the step's log
    faulthandler._sigsegv()


class FaultyConversion(PyTorchONNXConversion):
    def prepare(self) -> None:
        self.model_list = [
            ModelEntry("unexportable", spectrum_net, (64,), description="aten::fft_rfft, not in opset 17"),
            ModelEntry("crasher", segfault, (64,), description="segfaults while it is built"),
            ModelEntry("mlp", mlp, (64,)),
        ]


class PerturbedConversion(PyTorchONNXConversion):
    """The MLP whose ONNX file has its largest output-layer weight scaled by 1.01 after the export."""

    framework = "perturbed"

    def prepare(self) -> None:
        self.model_list = [ModelEntry("mlp", mlp, (64,))]

    def onnx_export(self, model: Any, entry: ModelEntry, export_path: Path) -> None:
        import onnx
        from onnx import numpy_helper

        super().onnx_export(model, entry, export_path)
        graph = onnx.load(str(export_path))
        last_gemm = [node for node in graph.graph.node if node.op_type == "Gemm"][-1]
        weights = {tensor.name: tensor for tensor in graph.graph.initializer}
        tensor = weights[last_gemm.input[1]]
        values = numpy_helper.to_array(tensor).copy()
        index = np.unravel_index(np.argmax(np.abs(values)), values.shape)
        values[index] *= 1.01
        tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
        onnx.save(graph, str(export_path))


def sleep_for(seconds: float) -> None:
    import time

    time.sleep(seconds)


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes * 1024 * 1024))


def fail() -> None:
    raise ValueError("this step fails on purpose")
