"""The ModelCompiler interface: turn a trained model into a model for one target."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.args import ArgumentsMixin
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import ConfigurationError


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

    #: the model formats `compile` reads ("keras", "onnx", ...)
    accepted_frameworks: tuple[str, ...] = ()
    model_framework = "onnx"

    def compile(self, input_model_path: Path, wrapper: Any = None) -> Path:
        """Compile the model at `input_model_path`; returns the compiled model's path.

        `wrapper` (a ModelWrapper) gives the model's preprocessing for representative samples.
        """
        raise NotImplementedError

    def get_framework_and_version(self) -> tuple[str, str]:
        raise NotImplementedError

    def source_model(self, wrapper: Any) -> Path:
        """The file `compile` reads for this wrapper: its own model file, or an ONNX export of it.

        With model framework "auto", the wrapper's own file when this compiler reads its framework,
        else an ONNX export.
        """
        framework, _ = wrapper.get_framework_and_version()
        if self.model_framework == "auto":
            self.model_framework = framework if framework in self.accepted_frameworks else "onnx"
        if self.model_framework == "onnx":
            if wrapper.model_path.suffix == ".onnx":
                return wrapper.model_path
            onnx_path = self.compiled_model_path.with_name(self.compiled_model_path.stem + "-source.onnx")
            wrapper.save_to_onnx(onnx_path)
            return onnx_path
        if framework != self.model_framework:
            raise ConfigurationError(
                f"{type(self).__name__} with --model-framework {self.model_framework} cannot read a {framework} "
                f"model: pass --model-framework {framework if framework in self.accepted_frameworks else 'onnx'}")
        return wrapper.model_path

    def representative_inputs(self, wrapper: Any, count: int, seed: int = 0) -> list[np.ndarray]:
        """Up to `count` preprocessed training samples (batch of one each), for calibration."""
        if self.dataset is None:
            raise ConfigurationError(f"{type(self).__name__} needs a dataset for its representative samples: pass "
                                     "the dataset class")
        samples = []
        for inputs, _ in self.dataset.iter_batches("train", batch_size=1, max_samples=count, shuffle_seed=seed):
            samples.append(wrapper.preprocess_input(inputs) if wrapper is not None else inputs)
        return [np.asarray(s, dtype=np.float32) for s in samples]

    def describe(self) -> dict[str, Any]:
        framework, version = self.get_framework_and_version()
        return {"compiler": f"{type(self).__module__}.{type(self).__name__}", "framework": framework,
                "version": version, "path": str(self.compiled_model_path),
                "size_bytes": self.compiled_model_path.stat().st_size if self.compiled_model_path.is_file() else 0,
                "settings": self.settings()}

    def settings(self) -> dict[str, Any]:
        """The arguments that change the compiled model (recorded with every result)."""
        return {}

    @classmethod
    def form_argparse(cls):
        parser, group = super().form_argparse()
        group.add_argument("--compiled-model-path", type=Path, required=True,
                           help="Where the compiled model is written on the host")
        return parser, group

    @classmethod
    def from_argparse(cls, dataset: Dataset | None, args: argparse.Namespace) -> "ModelCompiler":
        return cls(dataset, args.compiled_model_path)
