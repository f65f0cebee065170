"""TVM: compiling for this CPU and for Arm boards, running on the local board, tuning once, failing cleanly."""

from __future__ import annotations

import json
import struct
import subprocess

import numpy as np
import pytest
import yaml
from conftest import require_tool
from protocol_helpers import tiny_onnx_model

from edge_ai_lib.compilers.tvm import TVMCompiler, count_records
from edge_ai_lib.core.errors import UnsupportedModelError

TVM_RUNTIME = "edge_ai_lib.runtimes.tvm.TVMRuntime"
ELF_MACHINES = {"aarch64": 183, "armv7l": 40}  # e_machine: EM_AARCH64, EM_ARM
CROSS_COMPILERS = {"aarch64": "aarch64-linux-gnu-gcc", "armv7l": "arm-linux-gnueabihf-gcc"}
# The Relax VM's executable, which the runtime's loader looks up in the library.
LIBRARY_SYMBOL = "__tvm_ffi__library_bin"


def onnx_export(wrapper, tmp_path):
    path = tmp_path / "model.onnx"
    wrapper.save_to_onnx(path)
    return path


def celu_model(path):
    """A one-operator ONNX model with Celu, which ONNX Runtime runs and TVM's importer lacks."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Celu", ["input"], ["output"])], "celu",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 10])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_digits_models_compile_for_llvm_and_match_onnxruntime_on_the_local_board(framework, digits, tmp_path,
                                                                                  request):
    import onnxruntime
    from test_board import benchmark_on_local_board

    wrapper, _ = request.getfixturevalue(f"trained_{framework}_digits")
    source = onnx_export(wrapper, tmp_path)
    compiler = TVMCompiler(digits, tmp_path / "model.so")
    described = compiler.compile_model(wrapper, source)
    assert described["size_bytes"] > 0 and described["target"]["mcpu"]

    board_directory = tmp_path / "board"
    board_directory.mkdir()
    result = benchmark_on_local_board(wrapper, digits, compiler.compiled_model_path, TVM_RUNTIME, board_directory)
    inputs, _ = digits.get_split_arrays("validation")
    session = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    prepared = wrapper.preprocess_input(inputs).astype(np.float32)
    reference = np.concatenate([session.run(None, {name: prepared[i:i + 1]})[0] for i in range(len(prepared))])
    assert result.outputs.shape == reference.shape
    assert np.max(np.abs(result.outputs - reference)) <= 1e-4
    assert result.model_info["runtime"] == "tvm"


def elf_header(path):
    """(class, endianness, type, machine) of an ELF file, read from its header."""
    data = path.read_bytes()[:20]
    assert data[:4] == b"\x7fELF", f"{path} is not an ELF file"
    elf_class, endianness = data[4], data[5]
    file_type, machine = struct.unpack("<HH" if endianness == 1 else ">HH", data[16:20])
    return elf_class, endianness, file_type, machine


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["aarch64", "armv7l"])
def test_cross_compiled_library_is_a_shared_object_for_the_board(architecture, trained_torch_digits, digits,
                                                                 tmp_path):
    cross = require_tool(CROSS_COMPILERS[architecture], f"it links TVM libraries for {architecture} boards")
    wrapper, _ = trained_torch_digits
    compiler = TVMCompiler(digits, tmp_path / "model.so", architecture=architecture)
    compiler.compile_model(wrapper, onnx_export(wrapper, tmp_path))
    elf_class, _, file_type, machine = elf_header(compiler.compiled_model_path)
    assert file_type == 3  # ET_DYN: a shared object
    assert machine == ELF_MACHINES[architecture]
    assert elf_class == (2 if architecture == "aarch64" else 1)  # 64 or 32 bits
    nm = cross.replace("-gcc", "-nm")
    symbols = subprocess.run([nm, "-D", "--defined-only", str(compiler.compiled_model_path)], capture_output=True,
                             text=True, check=True).stdout
    names = {line.split()[-1] for line in symbols.splitlines() if line.strip()}
    assert LIBRARY_SYMBOL in names, symbols[:2000]
    # the operators, each an exported TVM FFI function the VM calls
    assert any(name.startswith("__tvm_ffi_fused_conv2d") for name in names), symbols[:2000]
    assert compiler.target_description()["mtriple"].startswith(architecture)


@pytest.mark.slow
def test_tuning_writes_a_database_that_a_second_compilation_reuses_without_measuring(tmp_path):
    # A one-task model (MatMul + Add) and a 2-trial budget: MetaSchedule's fixed cost per task dominates,
    # so the digits CNN's eight tasks would make this test several times longer for nothing more.
    source = tmp_path / "tiny.onnx"
    tiny_onnx_model(source, features=64, classes=16)
    wrapper = digits = None
    database = tmp_path / "tuning"
    settings = {"tuning_trials": 2, "tuning_trials_per_task": 1, "tuning_database": database}
    first = TVMCompiler(digits, tmp_path / "first.so", **settings).compile_model(wrapper, source)
    records = count_records(database)
    assert records > 0 and first["tuning"]["trials"] == records
    log_sizes = {p: p.stat().st_size for p in database.rglob("*") if p.is_file()}

    second = TVMCompiler(digits, tmp_path / "second.so", **settings).compile_model(wrapper, source)
    assert count_records(database) == records
    # no measurement: no file of the database (records, workloads, MetaSchedule's logs) has grown
    assert {p: p.stat().st_size for p in database.rglob("*") if p.is_file()} == log_sizes
    assert second["tuning"] == first["tuning"]


def test_a_tuning_database_is_made_for_one_model_target_and_budget(tmp_path):
    source = celu_model(tmp_path / "model.onnx")
    keys = [TVMCompiler(None, tmp_path / "m.so", **settings).tuning_key(source)
            for settings in ({"tuning_trials": 2}, {"tuning_trials": 3}, {"tuning_trials": 2, "mcpu": "skylake"},
                             {"tuning_trials": 2, "architecture": "aarch64"})]
    assert len({json.dumps(key, sort_keys=True) for key in keys}) == 4
    source.write_bytes(source.read_bytes() + b" ")
    assert TVMCompiler(None, tmp_path / "m.so", tuning_trials=2).tuning_key(source) != keys[0]


def test_a_model_tvm_cannot_import_names_the_operator(tmp_path):
    source = celu_model(tmp_path / "celu.onnx")
    compiler = TVMCompiler(None, tmp_path / "celu.so")
    with pytest.raises(UnsupportedModelError, match="ONNX operator Celu is not supported"):
        compiler.compile(source)
    assert not compiler.compiled_model_path.exists()


def test_an_unsupported_model_is_recorded_as_a_failure_with_no_compiled_file(tmp_path):
    source = celu_model(tmp_path / "celu.onnx")
    compiler = TVMCompiler(None, tmp_path / "celu.so")
    compiler.record_failure(UnsupportedModelError("TVM cannot import: ONNX operator Celu"), source)
    described = compiler.compiled_description()
    assert "Celu" in described["failure"]["error"] and described["failure"]["stage"] == "compilation"
    assert not compiler.compiled_model_path.exists()


def test_cross_compiling_without_the_cross_compiler_says_which_package(tmp_path, monkeypatch):
    from edge_ai_lib.core.errors import ConfigurationError

    monkeypatch.setenv("PATH", str(tmp_path))
    compiler = TVMCompiler(None, tmp_path / "model.so", architecture="aarch64")
    with pytest.raises(ConfigurationError, match="apt-get install gcc-aarch64-linux-gnu"):
        compiler._linker()


CELU_TORCH = '''import torch

from edge_ai_lib.modelwrappers.classification.pytorch_digits import PyTorchDigitsCNN


class CeluTorchCNN(PyTorchDigitsCNN):
    """The digits CNN with a CELU, an operator TVM's ONNX importer lacks."""

    def build_network(self):
        return torch.nn.Sequential(super().build_network(), torch.nn.CELU())
'''


@pytest.mark.slow
def test_in_the_workflow_a_model_tvm_cannot_import_is_a_failed_row_and_the_others_finish(tmp_path):
    from test_workflow import make_workflow, snakemake

    config = {
        "datasets": {"digits": {"class": "edge_ai_lib.datasets.digits.DigitsDataset"}},
        "models": {"celu-cnn": {"wrapper": "testmodels.celu_torch.CeluTorchCNN", "framework": "pytorch",
                                "dataset": "digits",
                                "training": {"batch_size": 32, "learning_rate": 0.001, "num_epochs": 1}}},
        "compilers": {
            "onnxruntime": {"class": "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler",
                            "runtime": "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime", "target": "host"},
            "tvm": {"class": "edge_ai_lib.compilers.tvm.TVMCompiler", "runtime": TVM_RUNTIME, "target": "host"},
        },
        "boards": {"local": {"class": "edge_ai_lib.boards.local.LocalBoard", "architecture": "host"}},
        "benchmark": {"warmup": 2, "max_samples": 30},
    }
    directory = make_workflow(tmp_path, config, {"celu_torch": CELU_TORCH})
    snakemake(directory)
    results = directory / "results"
    assert not (results / "compiled" / "celu-cnn" / "tvm" / "model.so").exists()
    failed = json.loads((results / "benchmarks" / "celu-cnn" / "tvm" / "local-t1.json").read_text())
    assert failed["kind"] == "failed_run" and "Celu" in failed["failure"]["error"]
    measured = json.loads((results / "benchmarks" / "celu-cnn" / "onnxruntime" / "local-t1.json").read_text())
    assert measured["kind"] == "inference_client"
    summary = json.loads((results / "summary.json").read_text())
    assert "Celu" in summary["celu-cnn/tvm/local/t1"]["failure"]
    assert summary["celu-cnn/onnxruntime/local/t1"]["failure"] is None
    html = (results / "report.html").read_text()
    assert 'class="run failed" data-run="celu-cnn/tvm/local/t1"' in html and "Celu" in html


def test_the_default_config_has_untuned_tvm_for_this_cpu():
    from conftest import REPO

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    tvm = [entry for entry in config["compilers"].values() if entry["class"].endswith("TVMCompiler")]
    assert tvm and all(entry["target"] == "host" and not (entry.get("args") or {}).get("tuning_trials")
                       for entry in tvm)
