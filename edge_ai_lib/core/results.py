"""The versioned result JSON: building a document, checking it against its schema, reading and writing it.

The schema (resources/result.schema.json) is the contract with everything downstream (report, DVC
metrics, other tools): a document is validated before it is written and again when it is read, and
its version is checked so that an old file is refused with a sentence instead of misread.

A board benchmark's result knows what it is (`run`: the config keys of model, compiler and board, the
threads, their settings) and what it answered for each sample (`outcomes`: predicted and true class;
the raw outputs in a `.npy` file beside the JSON), so that nothing downstream parses paths and two
runs can be compared sample by sample.

Version 2 added `run`, `outcomes` and `board_provenance`.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.errors import MeasurementsError
from edge_ai_lib.core.files import atomic_write_text
from edge_ai_lib.core.timing import TimingRecord

SCHEMA_VERSION = 2


def load_schema() -> dict[str, Any]:
    """The result schema shipped with the package, so an installed library validates without the repo."""
    text = resources.files("edge_ai_lib.resources").joinpath("result.schema.json").read_text()
    return json.loads(text)


def validate_result(document: dict[str, Any]) -> None:
    """Check a result document against the schema.

    Raises
    ------
    MeasurementsError
        The document breaks the schema; the message names the field, so the writer can be fixed.
    """
    import jsonschema

    try:
        jsonschema.validate(document, load_schema())
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise MeasurementsError(f"result does not follow schema version {SCHEMA_VERSION} at {where}: "
                                f"{error.message}") from error
    outcomes = document.get("outcomes")
    if outcomes is not None:
        count = document["quality"]["sample_count"]
        lengths = {key: len(outcomes[key]) for key in ("predicted_class", "true_class")}
        if outcomes.get("outputs_shape"):
            lengths["outputs_shape[0]"] = outcomes["outputs_shape"][0]
        wrong = {key: length for key, length in lengths.items() if length != count}
        if wrong:
            raise MeasurementsError(f"result's outcomes do not match its {count} evaluated samples "
                                    f"({', '.join(f'{k}: {v}' for k, v in wrong.items())}): the writer is wrong")


def outputs_file_name(report_name: str) -> str:
    """The name of a run's raw-outputs file, beside its result `report_name.json`."""
    return f"{report_name}-outputs.npy"


def outcomes_section(scores: np.ndarray, truth: np.ndarray, outputs: np.ndarray | None,
                     outputs_file: str | None) -> dict[str, Any]:
    """The result's `outcomes`: per measured sample, in dataset order, the predicted and the true class.

    Parameters
    ----------
    scores : np.ndarray
        The scores the quality was computed from, one row per sample; the predicted class is the
        highest-scoring one, as for the accuracy.
    truth : np.ndarray
        The true class of each sample.
    outputs : np.ndarray | None
        The raw model outputs (before post-processing), stored beside the JSON as `outputs_file`;
        None when they are not kept.
    outputs_file : str | None
        The raw outputs' file name, relative to the result's directory (see `outputs_file_name`).
    """
    scores = np.asarray(scores)
    section: dict[str, Any] = {
        "predicted_class": scores.reshape(len(scores), -1).argmax(axis=1).astype(int).tolist(),
        "true_class": np.asarray(truth).astype(int).reshape(-1).tolist(),
        "outputs_file": None, "outputs_shape": None, "outputs_dtype": None,
    }
    if outputs is not None and outputs_file is not None:
        section.update(outputs_file=outputs_file, outputs_shape=list(np.shape(outputs)),
                       outputs_dtype=np.asarray(outputs).dtype.name)
    return section


def build_result(kind: str, model: dict[str, Any], dataset: dict[str, Any], quality: dict[str, Any],
                 timing: TimingRecord, provenance: dict[str, Any],
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A result document with the sections every kind of run shares.

    Parameters
    ----------
    kind : str
        The scenario that made it (e.g. "inference_performance"); the schema picks its checks by it.
    model, dataset, quality, provenance : dict[str, Any]
        The sections of the same names.
    timing : TimingRecord
        The run's times; stored raw with the statistics derived from them.
    extra : dict[str, Any] | None
        Further sections of this kind of run (host times, board resources, ...).
    """
    document = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "model": model,
        "dataset": dataset,
        "quality": quality,
        "performance": timing.to_dict(),
        "provenance": provenance,
    }
    if extra:
        document.update(extra)
    return document


def result_text(document: dict[str, Any]) -> str:
    """The JSON text of a result document, as `write_result` stores it."""
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def write_result(path: Path, document: dict[str, Any]) -> Path:
    """Validate, then write atomically (a crash or a full disk leaves the previous file, never half of one).

    Raises
    ------
    MeasurementsError
        The document breaks the schema; nothing is written.
    StorageError
        The file cannot be written (one sentence naming the directory and the fix).
    """
    validate_result(document)
    return atomic_write_text(path, result_text(document))


def read_result(path: Path) -> dict[str, Any]:
    """A result document from disk, checked for its version and against the schema.

    Raises
    ------
    MeasurementsError
        The file is missing, not JSON, of another schema version or breaks the schema; the message
        says to rerun the benchmark.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise MeasurementsError(f"result file '{path}' does not exist: run the benchmark first") from error
    except json.JSONDecodeError as error:
        raise MeasurementsError(f"result file '{path}' is not valid JSON ({error}): rerun the benchmark") \
            from error
    if not isinstance(document, dict):
        raise MeasurementsError(f"result file '{path}' holds {type(document).__name__}, not a result object: "
                                "rerun the benchmark")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise MeasurementsError(f"result file '{path}' has schema version {version}, this edge_ai_lib reads "
                                f"{SCHEMA_VERSION}: rerun the benchmark with this version")
    validate_result(document)
    return document


def read_outputs(path: Path, document: dict[str, Any] | None = None) -> np.ndarray:
    """The raw outputs stored beside the result at `path`, checked against what the result says of them.

    Parameters
    ----------
    path : Path
        The result JSON.
    document : dict[str, Any] | None
        The result, when already read (else `read_result(path)`).

    Raises
    ------
    MeasurementsError
        The result keeps no outputs, or their file is missing, unreadable or of another shape or
        type than the result records; the message says to rerun the benchmark.
    """
    path = Path(path)
    document = read_result(path) if document is None else document
    outcomes = document.get("outcomes") or {}
    name = outcomes.get("outputs_file")
    if not name:
        raise MeasurementsError(f"result file '{path}' keeps no raw outputs (kind {document.get('kind')}): "
                                "only board benchmarks (inference_client) store them")
    sidecar = path.parent / name
    try:
        outputs = np.load(sidecar, allow_pickle=False)
    except FileNotFoundError as error:
        raise MeasurementsError(f"the raw outputs of '{path}' ({sidecar}) are missing: keep the file beside "
                                "its result, or rerun the benchmark") from error
    except (OSError, ValueError) as error:
        raise MeasurementsError(f"the raw outputs of '{path}' ({sidecar}) cannot be read ({error}): rerun "
                                "the benchmark") from error
    if list(outputs.shape) != outcomes["outputs_shape"] or outputs.dtype.name != outcomes["outputs_dtype"]:
        raise MeasurementsError(f"the raw outputs in {sidecar} ({outputs.dtype.name} {list(outputs.shape)}) are "
                                f"not those of '{path}' ({outcomes['outputs_dtype']} {outcomes['outputs_shape']}): "
                                "the files come from different runs; rerun the benchmark")
    return outputs
