"""The ModelWrapper interface: a model of one framework, its I/O, training and host-side inference."""

from __future__ import annotations

from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np

from edge_ai_lib.core.args import Argument, ArgumentsMixin
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import ModelLoadError
from edge_ai_lib.core.measured_pass import measure_split
from edge_ai_lib.core.timing import TimingRecord
from edge_ai_lib.core.wire import decode_tensors, encode_tensors


class ModelWrapper(ArgumentsMixin):
    """A trained (or to-be-trained) model, tied to the dataset it classifies.

    Subclasses in `modelwrappers.frameworks` implement what a framework shares (saving, loading,
    training, ONNX export, inference); classes in `modelwrappers.classification` add the architecture.

    Inference is split in three so that only the model call is timed: `to_framework_input` (untimed:
    conversion from numpy), `run_inference` (timed), `to_numpy_output` (untimed).

    Parameters
    ----------
    model_path : Path
        The model file: read when `from_file`, written by `save_model`.
    dataset : Dataset
        The dataset the model is trained on and evaluated with.
    from_file : bool
        Load the model from `model_path` (True) or build a fresh, untrained one (False).
    **settings
        The class's other arguments (see `arguments`), kept as attributes.
    """

    arguments_title = "Model arguments"
    arguments = (Argument("model_path", Path, help="Path of the trained model (written by training, read otherwise)"),)
    default_warmup = 10

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None, dataset: Dataset | None = None,
                      from_file: bool = True) -> "ModelWrapper":
        settings = dict(settings or {})
        return cls(settings.pop("model_path", None), dataset, from_file, **settings)

    def __init__(self, model_path: Path | None, dataset: Dataset | None, from_file: bool = True, **settings: Any):
        self.configure({"model_path": model_path, **settings} if model_path is not None else settings)
        self.dataset = dataset
        self.from_file = from_file
        self.model: Any = None
        self.stored_class_names: list[str] | None = None
        self.prepare_model()

    def get_class_names(self) -> list[str]:
        """The classes the model predicts: the dataset's, or those stored with a loaded model."""
        if self.dataset is not None:
            return self.dataset.get_class_names()
        if self.stored_class_names is not None:
            return list(self.stored_class_names)
        raise ModelLoadError(f"{type(self).__name__} needs a dataset to know its classes: pass the dataset "
                             "class as well")

    # -- model lifecycle ---------------------------------------------------------------------------
    def prepare_model(self) -> None:
        if self.from_file:
            if not self.model_path.is_file():
                raise ModelLoadError(
                    f"model file '{self.model_path}' does not exist: train it with "
                    "`python -m edge_ai_lib.scenarios.model_training ...` or pass the right --model-path"
                )
            self.model = self.load_model(self.model_path)
        else:
            self.model = self.build_model()

    def build_model(self) -> Any:
        """A fresh, untrained model."""
        raise NotImplementedError

    def load_model(self, path: Path) -> Any:
        raise NotImplementedError

    def save_model(self, path: Path) -> None:
        raise NotImplementedError

    def save_to_onnx(self, path: Path) -> None:
        """Export to ONNX with a dynamic batch dimension (the framework's one export path)."""
        raise NotImplementedError

    def train_model(self, batch_size: int, learning_rate: float, epochs: int, logdir: Path) -> dict[str, Any]:
        """Train on the dataset's train split, validating each epoch; returns the per-epoch history."""
        raise NotImplementedError

    # -- inference ---------------------------------------------------------------------------------
    def preprocess_input(self, inputs: np.ndarray) -> np.ndarray:
        """Model-specific preprocessing of dataset inputs (layout, scaling)."""
        return inputs

    def postprocess_outputs(self, outputs: np.ndarray) -> np.ndarray:
        """Turn raw model outputs into per-class scores."""
        return outputs

    def to_framework_input(self, inputs: np.ndarray) -> Any:
        return inputs

    def run_inference(self, prepared: Any) -> Any:
        """The model call itself, the only part that is timed."""
        raise NotImplementedError

    def to_numpy_output(self, outputs: Any) -> np.ndarray:
        return np.asarray(outputs)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Raw model outputs for a batch of dataset inputs (no timing)."""
        prepared = self.to_framework_input(self.preprocess_input(inputs))
        return self.to_numpy_output(self.run_inference(prepared))

    # -- metadata and bytes ------------------------------------------------------------------------
    def get_framework_and_version(self) -> tuple[str, str]:
        raise NotImplementedError

    def get_io_specification(self) -> dict[str, list[dict[str, Any]]]:
        """{"input": [{"name", "shape", "dtype"}], "output": [...]}; -1 marks the batch dimension."""
        raise NotImplementedError

    def convert_input_to_bytes(self, inputs: np.ndarray) -> bytes:
        """Preprocessed dataset inputs as the DATA payload of docs/protocol.md (a float32 tensor list)."""
        return encode_tensors([np.asarray(self.preprocess_input(inputs), dtype=np.float32)])

    def convert_output_from_bytes(self, data: bytes) -> np.ndarray:
        """The raw model outputs carried by the OK answering OUTPUT."""
        return decode_tensors(data)[0]

    def describe(self) -> dict[str, Any]:
        framework, version = self.get_framework_and_version()
        return {
            "wrapper": f"{type(self).__module__}.{type(self).__name__}",
            "framework": framework,
            "framework_version": version,
            "path": str(self.model_path),
            "size_bytes": self.model_path.stat().st_size if self.model_path.is_file() else 0,
            "io_specification": self.get_io_specification(),
        }

    # -- host benchmark ----------------------------------------------------------------------------
    def test_inference(self, split: str = "validation", warmup: int | None = None,
                       max_samples: int | None = None, batch_size: int | None = None,
                       progress: bool = True) -> tuple[dict[str, Any], TimingRecord]:
        """Quality and times of the model run over a split on this host (see `evaluate`)."""
        evaluation = self.evaluate(split, warmup, max_samples, batch_size, progress)
        return evaluation["quality"], evaluation["timing"]

    def evaluate(self, split: str = "validation", warmup: int | None = None, max_samples: int | None = None,
                 batch_size: int | None = None, progress: bool = True) -> dict[str, Any]:
        """Run the model over a split on this host, timing each model call.

        The loop is `measure_split`'s, shared with the board client so host and board numbers compare;
        only `run_inference` is timed, the conversions to and from the framework are not.

        Parameters
        ----------
        split : str
            The dataset split to run.
        warmup : int | None
            Warm-up calls after the cold one; `default_warmup` when None.
        max_samples : int | None
            Measure only the split's first samples; all when None.
        batch_size : int | None
            Samples per call; the dataset's batch size when None.
        progress : bool
            Show a progress bar.

        Returns
        -------
        dict[str, Any]
            "quality" of the measured pass, its "timing", and per sample in the split's order the raw
            "outputs", the post-processed "scores" and the true "labels": what a compiled variant's
            outputs are held against.
        """
        def prepare(inputs: np.ndarray) -> Any:
            return self.to_framework_input(self.preprocess_input(inputs))

        def run(prepared: Any) -> tuple[float, np.ndarray]:
            start = perf_counter()
            outputs = self.run_inference(prepared)
            return perf_counter() - start, self.to_numpy_output(outputs)

        measured = measure_split(self.dataset, split, prepare, run,
                                 self.default_warmup if warmup is None else warmup, batch_size=batch_size,
                                 max_samples=max_samples, progress=progress, description="inference")
        scores = np.concatenate([self.postprocess_outputs(outputs) for outputs in measured.outputs])
        return {"quality": self.dataset.evaluate(scores, measured.labels), "timing": measured.timing,
                "outputs": np.concatenate([np.asarray(outputs) for outputs in measured.outputs]),
                "scores": scores, "labels": measured.labels}
