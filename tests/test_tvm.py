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


def two_layer_model(path, features=32, hidden=16, classes=8):
    """relu(x @ W1 + b1) @ W2 + b2: two MetaSchedule tasks (two fused matmul/add operators)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"W1": rng.random((features, hidden), dtype=np.float32), "b1": rng.random(hidden, dtype=np.float32),
               "W2": rng.random((hidden, classes), dtype=np.float32), "b2": rng.random(classes, dtype=np.float32)}
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
         helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "W2"], ["o"]),
         helper.make_node("Add", ["o", "b2"], ["output"])], "two-layer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, features])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, classes])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tuned_workloads(database):
    """How many trials the database holds for each workload (task) it records."""
    counts = {}
    for line in (database / "database_tuning_record.json").read_text().splitlines():
        if line.strip():
            workload = json.loads(line)[0]
            counts[workload] = counts.get(workload, 0) + 1
    return counts


def run_library(library, tmp_path, inputs):
    from edge_ai_lib.runtimes.tvm import TVMRuntime

    runtime = TVMRuntime(tmp_path / "received.so")
    runtime.load_model(library)
    runtime.set_inputs([inputs])
    runtime.run()
    return runtime.get_outputs()[0]


@pytest.mark.slow
def test_a_budget_without_a_per_task_limit_is_spread_over_every_task(tmp_path):
    # MetaSchedule alone would give a 2-trial budget to the first task only.
    source = two_layer_model(tmp_path / "model.onnx")
    database = tmp_path / "tuning"
    TVMCompiler(None, tmp_path / "model.so", tuning_trials=2, tuning_database=database).compile(source)
    assert tuned_workloads(database) == {0: 1, 1: 1}


@pytest.mark.slow
def test_the_time_cap_stops_tuning_and_keeps_what_was_measured(tmp_path, monkeypatch):
    import onnxruntime

    import edge_ai_lib.compilers.tvm as tvm_compiler

    class CapAfterOneTurn(tvm_compiler.TimeCap):
        """The cap passes once the first task has had its turn (the real clock would make this a race)."""

        checks = 0

        def passed(self):
            CapAfterOneTurn.checks += 1
            if CapAfterOneTurn.checks > 1:
                self.reached = True
            return self.reached

    monkeypatch.setattr(tvm_compiler, "TimeCap", CapAfterOneTurn)
    source = two_layer_model(tmp_path / "model.onnx")
    database = tmp_path / "tuning"
    settings = {"tuning_trials": 8, "tuning_time_cap_s": 3600, "tuning_database": database}
    compiler = TVMCompiler(None, tmp_path / "model.so", **settings)
    described = compiler.compile_model(None, source)
    record = json.loads((database / "tuning.json").read_text())
    assert record["capped"] is True
    # the first task's batch, sent before the cap, was measured and kept; the second task got no turn
    # (4 trials each: the budget spread; the search may find fewer distinct candidates than that)
    measured = tuned_workloads(database)
    assert list(measured) == [0] and 1 <= measured[0] <= 4
    assert described["tuning"]["trials"] == measured[0]
    # the library (one task tuned, the other with the untuned schedule) computes what ONNX Runtime does
    inputs = np.random.default_rng(1).random((1, 32), dtype=np.float32)
    expected = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(
        None, {"input": inputs})[0]
    np.testing.assert_allclose(run_library(compiler.compiled_model_path, tmp_path, inputs), expected, atol=1e-4)


def test_a_time_cap_must_be_positive(tmp_path):
    from edge_ai_lib.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="tuning-time-cap-s must be more than 0"):
        TVMCompiler(None, tmp_path / "m.so", tuning_trials=2, tuning_time_cap_s=0)


def test_a_tuning_database_is_made_for_one_model_target_and_budget(tmp_path):
    source = two_layer_model(tmp_path / "model.onnx")
    keys = [TVMCompiler(None, tmp_path / "m.so", **settings).tuning_key(source)
            for settings in ({"tuning_trials": 2}, {"tuning_trials": 3}, {"tuning_trials": 2, "mcpu": "skylake"},
                             {"tuning_trials": 2, "architecture": "aarch64"})]
    assert len({json.dumps(key, sort_keys=True) for key in keys}) == 4


def test_a_tuning_database_follows_the_operators_not_the_weights_or_the_exporters_names(tmp_path):
    import onnx

    def key(path):
        return TVMCompiler(None, tmp_path / "m.so", tuning_trials=2).tuning_key(path)

    original = key(two_layer_model(tmp_path / "a.onnx"))
    model = onnx.load(str(tmp_path / "a.onnx"))
    # retrained: other weight values
    for tensor in model.graph.initializer:
        tensor.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(tensor) * 2 + 1, tensor.name))
    # exported again: tf2onnx names tensors and nodes differently from one export to the next
    renamed = {name: f"t{index}" for index, name in enumerate(
        [t.name for t in model.graph.initializer] + [o for n in model.graph.node for o in n.output][:-1])}
    for tensor in model.graph.initializer:
        tensor.name = renamed[tensor.name]
    for index, node in enumerate(model.graph.node):
        node.name = f"node{index}"
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    model.graph.name, model.producer_name = "export-2", "exporter 9.9"
    onnx.save(model, str(tmp_path / "b.onnx"))
    assert key(tmp_path / "b.onnx") == original
    # other shapes are other operators
    assert key(two_layer_model(tmp_path / "c.onnx", hidden=24)) != original


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
