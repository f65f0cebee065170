"""Outputs of emulated runs against the host's: which host run is the reference, and the figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_ai_lib.core.agreement import EMULATED_NOTE, agreement_with_host, output_agreement


def result(directory: Path, name: str, compiler: str, board: str, outputs: np.ndarray, emulated: bool,
           compiler_args: dict | None = None, model: str = "cnn") -> tuple[Path, dict]:
    """A result file of a board benchmark, as much of it as the agreement reads, with its outputs beside it."""
    np.save(directory / f"{name}-outputs.npy", outputs)
    document = {
        "kind": "inference_client",
        "run": {"model": model, "compiler": compiler, "board": board, "threads": 1,
                "settings": {"compiler": {"class": "edge_ai_lib.compilers.tvm.TVMCompiler", "args": compiler_args or {}},
                             "runtime": {"class": "edge_ai_lib.runtimes.tvm.TVMRuntime", "args": {}},
                             "protocol": None, "board": None}},
        "board": {"name": board, "emulated": emulated},
        "dataset": {"class": "edge_ai_lib.datasets.digits.DigitsDataset"},
        "outcomes": {"predicted_class": outputs.argmax(1).tolist(), "true_class": [0] * len(outputs),
                     "outputs_file": f"{name}-outputs.npy", "outputs_shape": list(outputs.shape),
                     "outputs_dtype": outputs.dtype.name},
    }
    return directory / f"{name}.json", document


def test_an_emulated_run_is_compared_with_the_host_run_of_the_same_compiler_settings(tmp_path):
    rng = np.random.default_rng(0)
    host = rng.random((20, 10), dtype=np.float32)
    board = host.copy()
    board[3, 2] += 1e-6
    board[7] = 0
    board[7, 0] = 9  # one sample's top-1 class differs
    results = [
        result(tmp_path, "host", "tvm", "local", host, False, {"architecture": "host"}),
        result(tmp_path, "tuned", "tvm-tuned", "local", host + 1, False, {"architecture": "host", "tuning_trials": 8}),
        result(tmp_path, "board", "tvm-aarch64", "pi", board, True, {"architecture": "aarch64", "mcpu": "cortex-a72"}),
    ]
    agreements = agreement_with_host(results)
    assert list(agreements) == [str(tmp_path / "board.json")]
    entry = agreements[str(tmp_path / "board.json")]
    assert entry["reference"] == {"model": "cnn", "compiler": "tvm", "board": "local", "threads": 1}
    assert entry["samples"] == 20 and entry["top1_disagreements"] == 1
    assert entry["top1_agreement"] == pytest.approx(19 / 20)
    assert entry["max_abs_error"] == pytest.approx(9 - host[7, 0])
    assert entry["note"] == EMULATED_NOTE


def test_an_emulated_run_without_a_host_run_says_what_to_add(tmp_path):
    outputs = np.eye(4, dtype=np.float32)
    results = [result(tmp_path, "board", "tvm-aarch64", "pi", outputs, True),
               result(tmp_path, "other", "tvm", "local", outputs, False, model="another-model")]
    entry = agreement_with_host(results)[str(tmp_path / "board.json")]
    assert "no run of cnn" in entry["error"] and "not emulated" in entry["error"]


def test_quantized_outputs_are_compared_in_their_own_units():
    host = np.array([[-128, 5, 127]], dtype=np.int8)
    board = np.array([[-128, 6, 127]], dtype=np.int8)
    figures = output_agreement(host, board, [2], [2])
    assert figures["max_abs_error"] == 1.0 and figures["top1_agreement"] == 1.0
    assert figures["outputs_dtype"] == "int8"
