"""The compiler layer's record of a compilation: written beside the model, read back by a later run."""

import json
from pathlib import Path

import pytest

from edge_ai_lib.core.compiler import ModelCompiler
from edge_ai_lib.core.errors import ModelLoadError


class CopyCompiler(ModelCompiler):
    """Compiles by copying, so the record's handling is tested without a framework."""

    def compile(self, input_model_path: Path, wrapper=None) -> Path:
        self.compiled_model_path.write_bytes(Path(input_model_path).read_bytes())
        return self.compiled_model_path

    def get_framework_and_version(self) -> tuple[str, str]:
        return "copy", "1"


def test_a_compilation_is_recorded_beside_the_model_and_read_back_without_its_provenance(tmp_path):
    source = tmp_path / "model.onnx"
    source.write_bytes(b"model")
    described = CopyCompiler(None, tmp_path / "compiled.onnx").compile_model(None, source, provenance={"hostname": "h"})
    assert json.loads((tmp_path / "compiled.onnx.json").read_text()) == described
    assert described["source_model"] == str(source) and described["size_bytes"] == 5

    again = CopyCompiler(None, tmp_path / "compiled.onnx").compiled_description()
    assert again["compile_seconds"] == described["compile_seconds"] and "provenance" not in again


def test_a_broken_compilation_record_names_the_fix(tmp_path):
    compiler = CopyCompiler(None, tmp_path / "compiled.onnx")
    compiler.description_path.write_text("{cut short")
    with pytest.raises(ModelLoadError, match="compiled.onnx.json is not valid JSON .*: compile the model again"):
        compiler.compiled_description()
