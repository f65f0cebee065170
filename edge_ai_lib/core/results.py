"""The versioned result JSON: building a document, checking it against its schema, reading and writing it.

The schema (resources/result.schema.json) is the contract with everything downstream (report, DVC
metrics, other tools): a document is validated before it is written and again when it is read, and
its version is checked so that an old file is refused with a sentence instead of misread.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from edge_ai_lib.core.errors import MeasurementsError
from edge_ai_lib.core.files import atomic_write_text
from edge_ai_lib.core.timing import TimingRecord

SCHEMA_VERSION = 1


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
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise MeasurementsError(f"result file '{path}' has schema version {version}, this edge_ai_lib reads "
                                f"{SCHEMA_VERSION}: rerun the benchmark with this version")
    validate_result(document)
    return document
