"""The ONNXConversion interface: round trips of a framework's models through ONNX, with numerical parity.

A conversion (one per framework) lists its models, builds each with a fixed seed, runs it on inputs
at the model's own scale (the reference), exports it to ONNX and imports ONNX files back. An
`ONNXTarget` is anything else that reads an ONNX file (the checker, ONNX Runtime, TVM). The grid
(`check_conversions`) runs every (model, step) in a child process (`core.isolation`), so an
exception, a segfault, a timeout or running out of memory is one cell with its error, and compares
every output with the reference: parity means |a - b| <= ATOL + RTOL * |b| everywhere.

Nothing here imports a framework: conversions and targets are named by class path and run in the
children.
"""

from __future__ import annotations

import enum
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edge_ai_lib.core.args import load_class
from edge_ai_lib.core.errors import ConfigurationError, ConversionError
from edge_ai_lib.core import isolation

ATOL = 1e-4
RTOL = 1e-3


class Status(str, enum.Enum):
    """A cell of the grid."""

    PASSED = "passed"                  # ran, and its outputs are within parity of the framework's
    MISMATCH = "mismatch"              # ran, but its outputs are not within parity
    OK = "ok"                          # a step without outputs (export, checker) succeeded
    FAILED = "failed"                  # raised an exception
    CRASHED = "crashed"                # the child died (a signal, an exit without an answer)
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out of memory"
    SKIPPED = "skipped"                # not run: the export failed
    NOT_IMPLEMENTED = "not implemented"

    @property
    def succeeded(self) -> bool:
        return self in (Status.PASSED, Status.MISMATCH, Status.OK)


_OUTCOME_STATUS = {isolation.FAILED: Status.FAILED, isolation.CRASHED: Status.CRASHED,
                   isolation.TIMEOUT: Status.TIMEOUT, isolation.OUT_OF_MEMORY: Status.OUT_OF_MEMORY}


@dataclass(frozen=True)
class Parity:
    """How far a converted model's outputs are from the source framework's on the same inputs.

    `max_rel_error` divides by |reference| where it is above `ATOL` (below, relative error means
    nothing); `top1_agreement` is the share of samples whose arg-max class is the same.
    """

    max_abs_error: float
    max_rel_error: float
    top1_agreement: float
    within: bool

    @classmethod
    def compare(cls, output: np.ndarray, reference: np.ndarray, atol: float = ATOL, rtol: float = RTOL) -> "Parity":
        output = np.asarray(output, dtype=np.float64)
        reference = np.asarray(reference, dtype=np.float64)
        if output.shape != reference.shape:
            raise ConversionError(f"the output has shape {list(output.shape)}, the framework's "
                                  f"{list(reference.shape)}: the conversion changed the output's layout")
        error = np.abs(output - reference)
        if not np.all(np.isfinite(output)):
            error = np.where(np.isfinite(output), error, np.inf)
        magnitude = np.abs(reference)
        relative = np.where(magnitude > atol, error / np.maximum(magnitude, atol), 0.0)
        flat_out = output.reshape(output.shape[0], -1)
        flat_ref = reference.reshape(reference.shape[0], -1)
        agreement = float(np.mean(np.argmax(flat_out, axis=1) == np.argmax(flat_ref, axis=1)))
        return cls(float(error.max(initial=0.0)), float(relative.max(initial=0.0)), agreement,
                   bool(np.all(error <= atol + rtol * magnitude)))


@dataclass
class Cell:
    """One (model, step): its status, what went wrong, its parity with the framework, its wall time."""

    status: Status
    message: str = ""
    seconds: float | None = None
    parity: Parity | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status.value, "message": self.message, "seconds": self.seconds}
        if self.parity is not None:
            # JSON has no infinity: a non-finite error (NaN or inf outputs) is written as null.
            data.update({name: (value if not isinstance(value, float) or np.isfinite(value) else None)
                         for name, value in vars(self.parity).items()})
        return data


@dataclass(frozen=True)
class ModelEntry:
    """A model of a conversion's list.

    `build` returns the framework's model (the seed is set before); `input_shape` is one sample's
    shape; `sample(rng, shape)` draws a batch at the model's own scale (images in 0..255 through the
    model's own preprocessing, normalised features...): on inputs of the wrong scale an untrained
    net's outputs are near constant and would hide a conversion's errors.
    """

    name: str
    build: Callable[[], Any]
    input_shape: tuple[int, ...]
    sample: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray] = \
        lambda rng, shape: rng.standard_normal(shape)
    description: str = ""


class ONNXTarget:
    """Something that reads an ONNX file and computes with it: a checker, a runtime, a compiler.

    `run` returns the outputs for `inputs` (a batch), or None when the target only checks the file.
    Implementations import their frameworks inside `run`: the grid runs it in a child process.
    """

    name = ""
    title = ""

    def run(self, onnx_path: Path, inputs: np.ndarray, workdir: Path) -> np.ndarray | None:
        raise NotImplementedError


class ONNXConversion:
    """Exports a framework's listed models to ONNX and imports ONNX files back into the framework.

    Implementations give `prepare` (fill `model_list`), `build_model`, `run_model`, `onnx_export`,
    `onnx_import` and `run_imported` with the framework's one export and one import; the grid
    (`check_conversions`) is here and catches every failure, so one broken model never stops it.

    `import_name` and `import_title` name the column of this framework's import in a grid: every
    model of every conversion of a grid is imported by every conversion's import.
    """

    framework = ""
    import_name = ""
    import_title = ""
    seed = 12345
    batch = 8

    def __init__(self) -> None:
        self.model_list: list[ModelEntry] = []
        self.prepare()

    # -- to implement ------------------------------------------------------------------------------
    def prepare(self) -> None:
        raise NotImplementedError

    def build_model(self, entry: ModelEntry) -> Any:
        """The entry's model with the framework's random seed set first, ready for inference."""
        raise NotImplementedError

    def run_model(self, model: Any, inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def onnx_export(self, model: Any, entry: ModelEntry, export_path: Path) -> None:
        raise NotImplementedError

    def onnx_import(self, import_path: Path, workdir: Path) -> Any:
        raise NotImplementedError

    def run_imported(self, imported: Any, inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- the steps, each run in a child process ----------------------------------------------------
    def entry(self, name: str) -> ModelEntry:
        for entry in self.model_list:
            if entry.name == name:
                return entry
        raise ConfigurationError(f"{type(self).__name__} has no model '{name}'; its models: "
                                 f"{', '.join(e.name for e in self.model_list)}")

    def export_with_reference(self, name: str, onnx_path: Path, reference_path: Path) -> dict[str, Any]:
        """Build the model, run it on seeded inputs at its scale (the reference), export it to ONNX."""
        entry = self.entry(name)
        model = self.build_model(entry)
        rng = np.random.default_rng(self.seed)
        inputs = np.asarray(entry.sample(rng, (self.batch, *entry.input_shape)), dtype=np.float32)
        outputs = np.asarray(self.run_model(model, inputs), dtype=np.float32)
        self.onnx_export(model, entry, Path(onnx_path))
        np.savez(reference_path, inputs=inputs, outputs=outputs)
        return {"output_shape": list(outputs.shape), "output_std": float(np.std(outputs))}

    def check_conversions(self, models_directory: Path, **options: Any) -> "Grid":
        """This conversion's grid alone (see `check_conversions`), with its own import as the only import."""
        cls = type(self)
        return check_conversions([f"{cls.__module__}.{cls.__qualname__}"], models_directory, **options)


def run_step(step: str, onnx_path: str, reference_path: str, output_path: str, workdir: str,
             conversion: str | None = None, model: str | None = None, target: str | None = None) -> Any:
    """One step of the grid, in its child process: "export", "target" or "import"."""
    if step == "export":
        return load_class(conversion, ONNXConversion)().export_with_reference(model, Path(onnx_path),
                                                                            Path(reference_path))
    inputs = np.load(reference_path)["inputs"]
    Path(workdir).mkdir(parents=True, exist_ok=True)
    if step == "target":
        outputs = load_class(target, ONNXTarget)().run(Path(onnx_path), inputs, Path(workdir))
    elif step == "import":
        converter = load_class(conversion, ONNXConversion)()
        outputs = converter.run_imported(converter.onnx_import(Path(onnx_path), Path(workdir)), inputs)
    else:
        raise ConfigurationError(f"unknown grid step '{step}': export, target or import")
    if outputs is None:
        return {"outputs": False}
    np.save(output_path, np.asarray(outputs))
    return {"outputs": True}


@dataclass(frozen=True)
class Column:
    """A column of the grid: its key, its title, and how its step is run."""

    name: str
    title: str
    step: str
    class_path: str


@dataclass
class Row:
    framework: str
    model: str
    description: str
    input_shape: list[int]
    cells: dict[str, Cell] = field(default_factory=dict)
    output_std: float | None = None  # the reference logits' spread: near 0, parity says nothing

    @property
    def uninformative(self) -> bool:
        return self.output_std is not None and self.output_std < 10 * ATOL


@dataclass
class Grid:
    """Every model of every conversion against every column; `to_dict` is GRID.json."""

    columns: list[Column]
    rows: list[Row]
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        """Per column: models that got through it (exported, checked, or within parity when it runs them);
        under "ran", those that ran whatever their parity; "models", the rows."""
        counts = {}
        for column in self.columns:
            wanted = (Status.OK,) if column.step == "export" else (Status.OK, Status.PASSED)
            counts[column.name] = sum(1 for row in self.rows if row.cells[column.name].status in wanted)
        counts["ran"] = {column.name: sum(1 for row in self.rows if row.cells[column.name].status.succeeded)
                         for column in self.columns}
        counts["models"] = len(self.rows)
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "tolerance": {"atol": ATOL, "rtol": RTOL, "rule": "|a - b| <= atol + rtol * |b|"},
            "columns": [vars(column) for column in self.columns],
            "rows": [{"framework": row.framework, "model": row.model, "description": row.description,
                      "input_shape": row.input_shape, "output_std": row.output_std,
                      "cells": {name: cell.to_dict() for name, cell in row.cells.items()}} for row in self.rows],
            "counts": self.counts(),
            "seconds": self.seconds,
            "settings": self.settings,
        }


def grid_columns(conversions: Sequence[type], targets: Sequence[type]) -> list[Column]:
    """export, then each target, then each conversion's import."""
    columns = [Column("export", "export", "export", "")]
    for target in targets:
        columns.append(Column(target.name, target.title, "target", f"{target.__module__}.{target.__qualname__}"))
    for conversion in conversions:
        columns.append(Column(conversion.import_name, conversion.import_title, "import",
                              f"{conversion.__module__}.{conversion.__qualname__}"))
    return columns


def _cell(outcome: isolation.Outcome, output_path: Path | None, reference: np.ndarray | None) -> Cell:
    seconds = round(outcome.seconds, 2)
    if outcome.status != isolation.OK:
        status = _OUTCOME_STATUS[outcome.status]
        if status is Status.FAILED and outcome.message.startswith("NotImplementedError"):
            status = Status.NOT_IMPLEMENTED
        return Cell(status, outcome.message, seconds)
    if output_path is None or not (outcome.value or {}).get("outputs"):
        return Cell(Status.OK, "", seconds)
    try:
        parity = Parity.compare(np.load(output_path), reference)
    except ConversionError as error:
        return Cell(Status.MISMATCH, str(error), seconds)
    return Cell(Status.PASSED if parity.within else Status.MISMATCH, "", seconds, parity)


def check_conversions(conversions: Sequence[str], models_directory: Path, targets: Sequence[str] = (),
                      importers: Sequence[str] | None = None, models: Sequence[str] | None = None,
                      timeout: float = 600, memory_limit_mb: int | None = 12288,
                      extra_path: Sequence[str] = (), progress: Callable[[str], None] | None = None) -> Grid:
    """The grid: every model of `conversions` exported into `models_directory`, then read by each target
    and imported by each of `importers` (default: the conversions themselves), each step in a child.

    Parameters
    ----------
    conversions, targets, importers : class paths
        ONNXConversion classes whose models form the rows; ONNXTarget classes and ONNXConversion
        classes whose imports form the columns.
    models : names, optional
        Only these models: `name` or `framework:name`.
    timeout, memory_limit_mb :
        Each step's limits (see `core.isolation.run_isolated`).
    extra_path :
        Directories the children import from first (conversions defined outside the package).
    progress :
        Called with one line per finished step.
    """
    start = time.perf_counter()
    models_directory = Path(models_directory)
    models_directory.mkdir(parents=True, exist_ok=True)
    conversion_classes = [load_class(path, ONNXConversion) for path in conversions]
    importer_classes = [load_class(path, ONNXConversion) for path in (importers if importers is not None
                                                                        else conversions)]
    target_classes = [load_class(path, ONNXTarget) for path in targets]
    columns = grid_columns(importer_classes, target_classes)
    wanted = set(models or ())
    rows: list[Row] = []
    for conversion_class, conversion_path in zip(conversion_classes, conversions):
        conversion = conversion_class()
        for entry in conversion.model_list:
            if wanted and entry.name not in wanted and f"{conversion.framework}:{entry.name}" not in wanted:
                continue
            rows.append(_run_row(conversion, conversion_path, entry, columns, models_directory, timeout,
                                 memory_limit_mb, extra_path, progress))
    unknown = wanted - {r.model for r in rows} - {f"{r.framework}:{r.model}" for r in rows}
    if unknown:
        raise ConfigurationError(f"no conversion lists the model(s) {', '.join(sorted(unknown))}: name models as "
                                 "NAME or FRAMEWORK:NAME from the conversions' lists")
    settings = {"conversions": list(conversions), "targets": list(targets),
                "importers": list(importers if importers is not None else conversions),
                "timeout": timeout, "memory_limit_mb": memory_limit_mb, "batch": ONNXConversion.batch}
    return Grid(columns, rows, round(time.perf_counter() - start, 1), settings)


def _run_row(conversion: ONNXConversion, conversion_path: str, entry: ModelEntry, columns: list[Column],
             models_directory: Path, timeout: float, memory_limit_mb: int | None, extra_path: Sequence[str],
             progress: Callable[[str], None] | None) -> Row:
    stem = f"{conversion.framework}-{entry.name}"
    onnx_path = models_directory / f"{stem}.onnx"
    reference_path = models_directory / f"{stem}.reference.npz"
    work = models_directory / "work" / stem
    logs = models_directory / "logs"
    row = Row(conversion.framework, entry.name, entry.description, list(entry.input_shape))
    reference = None
    # An earlier run's files must not stand in for this run's: a failed export leaves none.
    for stale in (onnx_path, reference_path):
        stale.unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    for column in columns:
        if column.step != "export" and not row.cells["export"].status.succeeded:
            row.cells[column.name] = Cell(Status.SKIPPED, "the export failed")
            continue
        output_path = work / f"{column.name}.npy"
        arguments = {"step": column.step, "onnx_path": str(onnx_path), "reference_path": str(reference_path),
                     "output_path": str(output_path), "workdir": str(work / column.name),
                     "conversion": conversion_path if column.step == "export" else
                     (column.class_path if column.step == "import" else None),
                     "model": entry.name, "target": column.class_path if column.step == "target" else None}
        outcome = isolation.run_isolated("edge_ai_lib.core.onnxconversion:run_step", arguments, timeout,
                                         memory_limit_mb, logs / f"{stem}.{column.name}.log", extra_path)
        if column.step == "export":
            cell = _cell(outcome, None, None)
            if cell.status.succeeded:
                reference = np.load(reference_path)["outputs"]
                row.output_std = float(np.std(reference))
                if row.uninformative:
                    cell.message = (f"the framework's outputs hardly vary (std {row.output_std:.2g}): parity "
                                    "with them says little; give the model inputs at its own scale")
        else:
            cell = _cell(outcome, output_path, reference)
        row.cells[column.name] = cell
        if progress is not None:
            parity = (f" max abs {cell.parity.max_abs_error:.2g}, top-1 {cell.parity.top1_agreement:.0%}"
                      if cell.parity else "")
            message = f": {cell.message[:160]}" if cell.message else ""
            progress(f"{stem} {column.name}: {cell.status.value} in {cell.seconds} s{parity}{message}")
    # The compiled and converted models are large and the grid keeps their numbers: only the ONNX file stays.
    shutil.rmtree(work, ignore_errors=True)
    return row


def grid_from_dict(data: dict[str, Any]) -> Grid:
    """A grid read back from its JSON (GRID.json), to render it again or into a report."""
    columns = [Column(**column) for column in data["columns"]]
    rows = []
    for row in data["rows"]:
        cells = {}
        for name, cell in row["cells"].items():
            parity = None
            if "max_abs_error" in cell:
                parity = Parity(*(float("inf") if cell[name] is None else cell[name]
                                  for name in ("max_abs_error", "max_rel_error")),
                                cell["top1_agreement"], cell["within"])
            cells[name] = Cell(Status(cell["status"]), cell.get("message", ""), cell.get("seconds"), parity)
        rows.append(Row(row["framework"], row["model"], row.get("description", ""), row.get("input_shape", []),
                        cells, row.get("output_std")))
    return Grid(columns, rows, data.get("seconds", 0.0), data.get("settings", {}))


def load_grid(path: Path) -> Grid:
    return grid_from_dict(json.loads(Path(path).read_text()))
