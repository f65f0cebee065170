"""The ONNXConversion interface: round trips of a framework's models through ONNX."""

from __future__ import annotations

import enum
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


class SupportStatus(enum.Enum):
    SUPPORTED = "supported"
    FAILED = "failed"
    NOT_IMPLEMENTED = "not implemented"


@dataclass(frozen=True)
class ModelEntry:
    """A model to convert: a name and a builder returning a framework model."""

    name: str
    build: Callable[[], Any]


@dataclass
class ConversionResult:
    framework: str
    model: str
    export_status: SupportStatus
    import_status: SupportStatus
    message: str = ""


class ONNXConversion:
    """Exports each listed model to ONNX and imports it back; reports the status of each step.

    Implementations give `prepare` (the model list), `onnx_export` and `onnx_import`; the conversion
    loop itself is here and catches every failure, so one broken model never stops the grid.
    """

    framework = ""
    version = ""

    def __init__(self) -> None:
        self.model_list: list[ModelEntry] = []
        self.prepare()

    def prepare(self) -> None:
        raise NotImplementedError

    def onnx_export(self, entry: ModelEntry, export_path: Path) -> None:
        raise NotImplementedError

    def onnx_import(self, entry: ModelEntry, import_path: Path) -> Any:
        raise NotImplementedError

    def check_conversions(self, models_directory: Path) -> list[ConversionResult]:
        models_directory = Path(models_directory)
        models_directory.mkdir(parents=True, exist_ok=True)
        results = []
        for entry in self.model_list:
            path = models_directory / f"{self.framework}-{entry.name}.onnx"
            export_status, message = self._step(lambda: self.onnx_export(entry, path))
            if export_status is SupportStatus.SUPPORTED:
                import_status, message = self._step(lambda: self.onnx_import(entry, path))
            else:
                import_status = SupportStatus.FAILED
            results.append(ConversionResult(self.framework, entry.name, export_status, import_status, message))
        return results

    @staticmethod
    def _step(call: Callable[[], Any]) -> tuple[SupportStatus, str]:
        try:
            call()
        except NotImplementedError:
            return SupportStatus.NOT_IMPLEMENTED, "not implemented"
        except Exception as error:  # the grid reports any failure instead of stopping
            last = traceback.format_exception_only(type(error), error)[-1].strip()
            return SupportStatus.FAILED, last
        return SupportStatus.SUPPORTED, ""
