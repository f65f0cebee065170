"""The workflow with an SSH board beside the local one: sshd on 127.0.0.1 (tests/sshd.py) is the board.

One small model, the ONNX Runtime compiler, the local board and the SSH board (its packages from a
wheelhouse pushed by the host, as for a board with no route out) run to the report; the SSH board's
rows are in the summary and its result carries its own provenance.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from sshd import ours_on_board, start_sshd
from test_ssh_board import BOARD_PYTHON, SSH_BOARD
from test_workflow import make_workflow, snakemake

pytestmark = pytest.mark.slow

MODEL, COMPILER = "pytorch-cnn", "onnxruntime"


def ssh_config(sshd, board_work, known_hosts) -> dict:
    return {
        "datasets": {"digits": {"class": "edge_ai_lib.datasets.digits.DigitsDataset"}},
        "models": {MODEL: {"wrapper": "testmodels.tiny_torch.TinyTorchCNN", "framework": "pytorch",
                           "dataset": "digits",
                           "training": {"batch_size": 32, "learning_rate": 0.001, "num_epochs": 1}}},
        "compilers": {COMPILER: {"class": "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler",
                                 "runtime": "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime", "target": "host"}},
        "boards": {
            "local": {"class": "edge_ai_lib.boards.local.LocalBoard", "architecture": "host"},
            "sshboard": {"class": SSH_BOARD, "architecture": "host",
                         "args": {"ssh_host": "127.0.0.1", "ssh_port": sshd.port, "user": sshd.user,
                                  "key_filename": str(sshd.client_key), "known_hosts": str(known_hosts),
                                  "connect_timeout": 10, "python": BOARD_PYTHON, "workdir": str(board_work),
                                  "packages": "wheelhouse"}},
        },
        "benchmark": {"warmup": 2, "max_samples": 40},
    }


def test_the_workflow_benchmarks_an_ssh_board_to_the_report(tmp_path):
    sshd = start_sshd(tmp_path / "sshd")
    try:
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(sshd.host_key_entry + "\n")
        board_work = tmp_path / "board-work"
        directory = tmp_path / "workflow"
        directory.mkdir()
        make_workflow(directory, ssh_config(sshd, board_work, known_hosts), {
            "tiny_torch": "from edge_ai_lib.modelwrappers.classification.pytorch_digits import PyTorchDigitsCNN\n\n\n"
                          "class TinyTorchCNN(PyTorchDigitsCNN):\n    pass\n"})
        started = time.monotonic()
        snakemake(directory)
        print(f"\nworkflow with the SSH board: {time.monotonic() - started:.1f} s")
        results = directory / "results" / "benchmarks" / MODEL / COMPILER
        documents = {board: json.loads((results / f"{board}-t1.json").read_text()) for board in ("local", "sshboard")}
        remote = documents["sshboard"]
        assert remote["kind"] == "inference_client"
        assert {key: remote["run"][key] for key in ("model", "compiler", "board", "threads")} == \
            {"model": MODEL, "compiler": COMPILER, "board": "sshboard", "threads": 1}
        assert remote["board"]["class"] == SSH_BOARD and remote["board"]["deploy"] == "installed"
        assert remote["board"]["address"] == f"{sshd.user}@127.0.0.1:{sshd.port}"
        assert remote["dataset"]["evaluated_sample_count"] == 40
        # The board's own provenance: its Python and the few packages of its environment, not the host's.
        provenance = remote["board_provenance"]
        board_version = subprocess.run([BOARD_PYTHON, "-c", "import platform; print(platform.python_version())"],
                                       capture_output=True, text=True, check=True).stdout.strip()
        assert provenance["python"] == board_version
        assert provenance["packages"]["onnxruntime"] and provenance["packages"]["edge_ai_lib"]
        assert "torch" not in provenance["packages"] and "torch" in remote["provenance"]["packages"]
        assert (results / "sshboard-t1-server.log").read_text().count("server stopped") == 1
        summary = json.loads((directory / "results" / "summary.json").read_text())
        assert sorted(summary) == [f"{MODEL}/{COMPILER}/{board}/t1" for board in ("local", "sshboard")]
        row = summary[f"{MODEL}/{COMPILER}/sshboard/t1"]
        assert row["board"] == "sshboard" and row["sample_count"] == 40 and row["failure"] is None
        assert row["latency_median_ms"] > 0 and row["protocol_overhead_median_ms"] > 0
        assert "sshboard" in (directory / "results" / "report.html").read_text()
        assert not ours_on_board(str(board_work)) and not ours_on_board(f"-p {sshd.port} ")
        rerun = snakemake(directory, "--dry-run")  # nothing of the board's settings reruns a job
        assert "Nothing to be done" in rerun.stdout + rerun.stderr, rerun.stdout[-3000:]
    finally:
        sshd.stop()
