"""The ModelCompiler interface: turn a trained model into a model for one target."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge_ai_lib.core.args import ArgumentsMixin
from edge_ai_lib.core.dataset import Dataset


class ModelCompiler(ArgumentsMixin):
    """Compiles (and optionally optimises: quantization, pruning) a model for a target.

    The dataset is given because some optimisations need samples (e.g. a representative set for
    int8 calibration).

    Parameters
    ----------
    dataset : Dataset
        Source of representative samples.
    compiled_model_path : Path
        Where the compiled model is written on the host.
    """

    arguments_title = "Compiler arguments"
    compiled_suffix = ""

    def __init__(self, dataset: Dataset | None, compiled_model_path: Path):
        self.dataset = dataset
        self.compiled_model_path = Path(compiled_model_path)

    def compile(self, input_model_path: Path, io_specification: dict[str, Any]) -> Path:
        """Compile the model at `input_model_path`; returns the compiled model's path."""
        raise NotImplementedError

    def get_framework_and_version(self) -> tuple[str, str]:
        raise NotImplementedError

    def get_io_specification(self) -> dict[str, Any]:
        """The I/O of the compiled model (may differ from the source, e.g. int8 inputs)."""
        raise NotImplementedError

    @classmethod
    def form_argparse(cls):
        parser, group = super().form_argparse()
        group.add_argument("--compiled-model-path", type=Path, required=True,
                           help="Where the compiled model is written on the host")
        return parser, group

    @classmethod
    def from_argparse(cls, dataset: Dataset | None, args: argparse.Namespace) -> "ModelCompiler":
        return cls(dataset, args.compiled_model_path)
