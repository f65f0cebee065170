"""The ONNX conversion grid: isolation of each step, the parity rule, and real grids on short model lists."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import run_module
from edge_ai_lib.core import isolation
from edge_ai_lib.core.errors import ConversionError
from edge_ai_lib.core.onnxconversion import (
    ATOL,
    RTOL,
    Cell,
    Column,
    Grid,
    Parity,
    Row,
    Status,
    check_conversions,
    grid_from_dict,
)
from edge_ai_lib.onnxconverters.grid import render_html, render_rst

TESTS = str(Path(__file__).parent)
PYTORCH = "edge_ai_lib.onnxconverters.pytorch.PyTorchONNXConversion"
TENSORFLOW = "edge_ai_lib.onnxconverters.tensorflow.TensorFlowONNXConversion"
CHECKER = "edge_ai_lib.onnxconverters.targets.ONNXChecker"
ORT = "edge_ai_lib.onnxconverters.targets.ONNXRuntimeTarget"
TVM = "edge_ai_lib.onnxconverters.targets.TVMTarget"


# -- the parity rule -------------------------------------------------------------------------------
def test_parity_is_absolute_plus_relative_tolerance():
    reference = np.array([[0.0, 1.0, -20.0], [3.0, 0.5, 0.0]])
    bound = ATOL + RTOL * np.abs(reference)
    assert Parity.compare(reference + 0.99 * bound, reference).within
    worse = reference.copy()
    worse[0, 2] += 1.01 * (ATOL + RTOL * 20.0)
    parity = Parity.compare(worse, reference)
    assert not parity.within
    assert parity.max_abs_error == pytest.approx(1.01 * (ATOL + RTOL * 20.0))
    assert parity.max_rel_error == pytest.approx(1.01 * (ATOL + RTOL * 20.0) / 20.0)
    assert parity.top1_agreement == 1.0


def test_parity_counts_top1_and_refuses_other_shapes():
    reference = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert Parity.compare(reference[:, ::-1], reference).top1_agreement == 0.0
    assert not Parity.compare(np.full_like(reference, np.nan), reference).within
    with pytest.raises(ConversionError, match=r"shape \[2, 2, 1\].*\[2, 2\]"):
        Parity.compare(reference[..., None], reference)


# -- each step in a child: failures, crashes, timeouts and memory become outcomes ----------------------
def test_isolated_call_returns_its_value():
    outcome = isolation.run_isolated("onnx_grid_models:allocate", {"megabytes": 1}, 60, 2048, extra_path=[TESTS])
    assert (outcome.status, outcome.value) == (isolation.OK, 1024 * 1024)


def test_isolated_exception_timeout_and_memory_cap(tmp_path):
    failed = isolation.run_isolated("onnx_grid_models:fail", {}, 60, 2048, extra_path=[TESTS])
    assert failed.status == isolation.FAILED
    assert failed.message == "ValueError: this step fails on purpose"
    slow = isolation.run_isolated("onnx_grid_models:sleep_for", {"seconds": 60}, 2, 2048, extra_path=[TESTS])
    assert slow.status == isolation.TIMEOUT and slow.seconds < 10
    hungry = isolation.run_isolated("onnx_grid_models:allocate", {"megabytes": 4096}, 60, 1024,
                                    tmp_path / "hungry.log", extra_path=[TESTS])
    assert hungry.status == isolation.OUT_OF_MEMORY, hungry
    crash = isolation.run_isolated("onnx_grid_models:segfault", {}, 60, 2048, extra_path=[TESTS])
    assert crash.status == isolation.CRASHED and "SIGSEGV" in crash.message


# -- rendering -------------------------------------------------------------------------------------
def _small_grid() -> Grid:
    columns = [Column("export", "export", "export", ""), Column("onnxruntime", "ONNX Runtime", "target", ORT)]
    rows = [Row("pytorch", "mlp", "3 <linear> layers", [64],
                {"export": Cell(Status.OK, seconds=1.0),
                 "onnxruntime": Cell(Status.MISMATCH, "", 0.5, Parity(0.25, 0.1, 0.75, False))}),
            Row("keras", "crasher", "", [64],
                {"export": Cell(Status.CRASHED, "the process died of SIGSEGV <no output>", 0.2),
                 "onnxruntime": Cell(Status.SKIPPED, "the export failed")})]
    return Grid(columns, rows, 12.0, {"timeout": 600, "memory_limit_mb": 6144})


def test_html_fragment_colours_cells_by_status_and_escapes_messages():
    html = render_html(_small_grid())
    assert html.startswith('<section class="onnx-grid">')
    assert 'class="onnx-mismatch" style="background: #ffe0b2' in html
    assert 'class="onnx-crashed" style="background: #ef9a9a' in html
    assert "&lt;no output&gt;" in html and "<no output>" not in html
    assert "1 / 2" in html  # models through the export column


def test_grid_round_trips_through_json_and_renders_rst():
    grid = _small_grid()
    again = grid_from_dict(json.loads(json.dumps(grid.to_dict())))
    assert again.to_dict() == grid.to_dict()
    rst = render_rst(grid)
    assert "mismatch: abs 2.5e-01, rel 1.0e-01, top-1 75%" in rst
    assert "keras crasher, export (crashed): the process died of SIGSEGV" in rst


# -- real grids ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_failed_and_crashed_exports_are_cells_and_the_rest_runs(tmp_path):
    """The scenario as a user runs it, on a list with a model the exporter refuses and one that segfaults."""
    grid_path = tmp_path / "grid.rst"
    env_path = os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")])
    os.environ["PYTHONPATH"], saved = env_path, os.environ.get("PYTHONPATH")
    try:
        result = run_module("edge_ai_lib.scenarios.onnx_conversion", tmp_path / "models", grid_path,
                            "--converters-list", "onnx_grid_models.FaultyConversion",
                            "--importers-list", PYTORCH, "--targets-list", CHECKER, ORT, "--timeout", "300")
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    assert result.returncode == 0, result.stderr[-2000:]
    grid = json.loads(grid_path.with_suffix(".json").read_text())
    cells = {row["model"]: row["cells"] for row in grid["rows"]}
    assert cells["unexportable"]["export"]["status"] == "failed"
    assert "fft_rfft" in cells["unexportable"]["export"]["message"]
    assert cells["unexportable"]["onnxruntime"]["status"] == "skipped"
    assert cells["crasher"]["export"]["status"] == "crashed"
    assert "SIGSEGV" in cells["crasher"]["export"]["message"]
    assert [cells["mlp"][c]["status"] for c in ("export", "onnx.checker", "onnxruntime", "onnx2torch")] == \
        ["ok", "ok", "passed", "passed"]
    assert (tmp_path / "models" / "pytorch-mlp.onnx").is_file()
    assert not (tmp_path / "models" / "pytorch-unexportable.onnx").exists()
    rst = grid_path.read_text()
    assert ".. list-table::" in rst and "fft\\_rfft" in rst
    assert grid["counts"]["export"] == 1 and grid["counts"]["onnxruntime"] == 1


@pytest.mark.slow
def test_exact_model_is_within_parity_everywhere_and_a_changed_weight_is_not(tmp_path):
    """The MLP converts exactly (ORT, TVM, onnx2torch, onnx2tf); the same MLP with one weight changed by 1 %
    after its export fails parity (negative control)."""
    exact = check_conversions([PYTORCH], tmp_path / "exact", targets=[ORT, TVM], importers=[PYTORCH, TENSORFLOW],
                              models=["mlp"], timeout=300)
    cells = exact.rows[0].cells
    for column in ("onnxruntime", "tvm", "onnx2torch", "onnx2tf"):
        assert cells[column].status is Status.PASSED, (column, cells[column])
        assert cells[column].parity.max_abs_error <= 1e-5
        assert cells[column].parity.top1_agreement == 1.0
    perturbed = check_conversions(["onnx_grid_models.PerturbedConversion"], tmp_path / "perturbed", targets=[ORT],
                                  importers=[PYTORCH], timeout=300, extra_path=[TESTS])
    cells = perturbed.rows[0].cells
    for column in ("onnxruntime", "onnx2torch"):
        assert cells[column].status is Status.MISMATCH, (column, cells[column])
        assert not cells[column].parity.within
        assert cells[column].parity.max_abs_error > ATOL
