"""The ModelCompiler interface: turn a trained model into a model for one target."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.args import Argument, ArgumentsMixin
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import ConfigurationError, ModelLoadError
from edge_ai_lib.core.files import atomic_write_text


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
    arguments = (Argument("compiled_model_path", Path, help="Where the compiled model is written on the host"),)
    compiled_suffix = ""

    def __init__(self, dataset: Dataset | None, compiled_model_path: Path | None = None, **settings: Any):
        self.dataset = dataset
        self.configure({"compiled_model_path": compiled_model_path, **settings} if compiled_model_path is not None
                       else settings)

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

    # -- compiling with its record -----------------------------------------------------------------
    @property
    def description_path(self) -> Path:
        """Where `compile_model` records a compilation: `<compiled model>.json`, beside the model."""
        return self.compiled_model_path.with_name(self.compiled_model_path.name + ".json")

    def compile_model(self, wrapper: Any, source: Path | None = None,
                      provenance: dict[str, Any] | None = None) -> dict[str, Any]:
        """Compile `wrapper`'s model and record the compilation beside the compiled model.

        The record (`description_path`) is written last: it is the proof that the compilation
        finished, so when it cannot be written the compiled model this call wrote is removed too,
        and no later run takes a half-finished compilation for a finished one.

        Parameters
        ----------
        wrapper : ModelWrapper
            The model to compile; also gives its preprocessing for representative samples.
        source : Path | None
            The file to compile (e.g. the model's ONNX export); `source_model(wrapper)` when None.
        provenance : dict[str, Any] | None
            Where and with what the compilation ran, kept in the record.

        Returns
        -------
        dict[str, Any]
            `describe()` with the source model and the compilation's duration (and the provenance).
        """
        start = time.perf_counter()
        source = Path(source) if source is not None else self.source_model(wrapper)
        compiled = self.compile(source, wrapper)
        described = self.describe()
        described.update({"source_model": str(source), "compile_seconds": time.perf_counter() - start})
        if provenance is not None:
            described["provenance"] = provenance
        try:
            atomic_write_text(self.description_path, json.dumps(described, indent=2) + "\n",
                              elsewhere="pass another --compiled-model-path")
        except BaseException:
            Path(compiled).unlink(missing_ok=True)
            raise
        return described

    def record_failure(self, error: BaseException, source: Path | None = None,
                       provenance: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record that this compiler cannot take the model: the record says why, and no compiled model is left.

        The workflow's compile job writes this instead of failing (see `UnsupportedModelError`), so the
        run becomes a failed row of the report while the other runs go on.
        """
        self.compiled_model_path.unlink(missing_ok=True)
        described = self.describe()
        described.update({"source_model": None if source is None else str(source), "size_bytes": 0,
                          "failure": {"stage": "compilation", "error": str(error),
                                      "error_type": type(error).__name__}})
        if provenance is not None:
            described["provenance"] = provenance
        atomic_write_text(self.description_path, json.dumps(described, indent=2) + "\n",
                          elsewhere="pass another --compiled-model-path")
        return described

    @classmethod
    def tunes(cls, settings: dict[str, Any]) -> bool:
        """Whether a compiler with these config arguments tunes the model first, into a database of its own
        (its `tuning_database` argument, a workflow output of its own)."""
        return False

    def compiled_description(self) -> dict[str, Any]:
        """The description of a model compiled earlier, for a run that does not compile it again.

        `describe()` updated with the record `compile_model` wrote, which alone knows the source model
        and the compilation's duration (or, for a model the compiler cannot take, its `failure`). The
        record's provenance is left out: a benchmark's result has
        its own, and one result must not carry two machines' descriptions.

        Raises
        ------
        ModelLoadError
            The record is not JSON (e.g. cut short by a crash).
        """
        described = self.describe()
        if self.description_path.is_file():
            try:
                described.update(json.loads(self.description_path.read_text()))
            except json.JSONDecodeError as error:
                raise ModelLoadError(f"the compilation record {self.description_path} is not valid JSON ({error}): "
                                     "compile the model again") from error
        described.pop("provenance", None)
        return described

    def describe(self) -> dict[str, Any]:
        framework, version = self.get_framework_and_version()
        return {"compiler": f"{type(self).__module__}.{type(self).__name__}", "framework": framework,
                "version": version, "path": str(self.compiled_model_path),
                "size_bytes": self.compiled_model_path.stat().st_size if self.compiled_model_path.is_file() else 0,
                "settings": self.settings()}

    def settings(self) -> dict[str, Any]:
        """The arguments that change the compiled model (recorded with every result): all but its path."""
        return {name: value for name, value in self.argument_settings().items() if name != "compiled_model_path"}
