"""Compiled models on a board: full client/server runs over real sockets, local board subprocesses."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import DIGITS, KERAS_DIGITS, REPO, run_module

from edge_ai_lib.boards.local import LocalBoard
from edge_ai_lib.compilers.onnxruntime import ONNXRuntimeCompiler
from edge_ai_lib.compilers.tflite import TFLiteCompiler
from edge_ai_lib.core.errors import BoardError, ConfigurationError, ConnectionLostError, NotSupportedError
from edge_ai_lib.core.runtimeprotocol import ClientSession
from edge_ai_lib.runtimeprotocols.network import NetworkProtocol
from edge_ai_lib.scenarios.inference_client import run_session

pytestmark = pytest.mark.slow

PROTOCOL = "edge_ai_lib.runtimeprotocols.network.NetworkProtocol"
TFLITE = "edge_ai_lib.runtimes.tflite.TFLiteRuntime"
ORT = "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime"

# variant: (compiler class, compiler arguments, runtime, suffix, largest |output - framework| or None)
VARIANTS = {
    "tflite-float32": (TFLiteCompiler, {"target": "float32"}, TFLITE, ".tflite", 1e-4),
    "tflite-int8": (TFLiteCompiler, {"target": "int8", "inference_input_type": "int8",
                                     "inference_output_type": "int8"}, TFLITE, ".tflite", None),
    "onnxruntime-float32": (ONNXRuntimeCompiler, {}, ORT, ".onnx", 1e-4),
    "onnxruntime-int8": (ONNXRuntimeCompiler, {"quantization": "static"}, ORT, ".onnx", None),
}


def benchmark_on_local_board(wrapper, dataset, compiled_path, runtime, tmp_path, warmup=2):
    with LocalBoard(log_path=tmp_path / "server.log") as board:
        host, port = board.start({"protocol": {"class": PROTOCOL, "args": {"timeout": 60}},
                                  "runtime": {"class": runtime, "args": {"save_model_path": str(tmp_path / "board-model")}}})
        protocol = NetworkProtocol(host, port, timeout=60)
        protocol.initialize_client()
        try:
            return run_session(protocol, wrapper, dataset, compiled_path.read_bytes(), warmup=warmup, progress=False)
        finally:
            protocol.disconnect()


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_compiled_model_on_the_local_board(framework, variant, digits, tmp_path, request):
    wrapper, _ = request.getfixturevalue(f"trained_{framework}_digits")
    compiler_class, arguments, runtime, suffix, tolerance = VARIANTS[variant]
    if compiler_class is TFLiteCompiler:
        arguments = {**arguments, "model_framework": "keras" if framework == "keras" else "onnx"}
    compiler = compiler_class(digits, tmp_path / f"compiled{suffix}", **arguments)
    described = compiler.compile_model(wrapper)
    assert described["size_bytes"] > 0

    result = benchmark_on_local_board(wrapper, digits, compiler.compiled_model_path, runtime, tmp_path)
    inputs, _ = digits.get_split_arrays("validation")
    reference = wrapper.predict(inputs)
    reference_accuracy = float((reference.argmax(1) == digits.labels[digits.splits["validation"]]).mean())
    assert abs(result.quality["accuracy"] - reference_accuracy) <= 0.02
    assert result.outputs.shape == reference.shape
    if tolerance is not None:
        assert np.max(np.abs(result.outputs - reference)) <= tolerance
    assert len(result.board.samples_s) == len(result.host.samples_s) == 360
    assert result.model_info["load_time_s"] > 0
    assert result.model_info["model_size_bytes"] == compiler.compiled_model_path.stat().st_size
    assert "connected" in (tmp_path / "server.log").read_text()


def test_float16_tflite_is_within_a_hundredth(trained_keras_digits, digits, tmp_path):
    wrapper, _ = trained_keras_digits
    compiler = TFLiteCompiler(digits, tmp_path / "f16.tflite", model_framework="keras", target="float16")
    compiler.compile_model(wrapper)
    result = benchmark_on_local_board(wrapper, digits, compiler.compiled_model_path, TFLITE, tmp_path)
    reference = wrapper.predict(digits.get_split_arrays("validation")[0])
    assert np.max(np.abs(result.outputs - reference)) <= 1e-2


def test_int8_mobilenetv2_is_at_most_40_percent_of_float32(tmp_path):
    from pet_archive import ArchiveServer, build_archives, md5

    from edge_ai_lib.datasets.download import RemoteFile
    from edge_ai_lib.datasets.pet_dataset import PetDataset
    from edge_ai_lib.modelwrappers.classification.tensorflow_pet_dataset import TensorFlowPetDatasetMobileNetV2

    archives = build_archives()
    with ArchiveServer(archives) as server:
        dataset = PetDataset(tmp_path / "pets", download_dataset=True, image_size=96,
                             archives=[RemoteFile(f"{server.url}/{n}", md5(d)) for n, d in archives.items()])
    wrapper = TensorFlowPetDatasetMobileNetV2(tmp_path / "mobilenet.keras", dataset, from_file=False, alpha=0.35)
    wrapper.save_model(wrapper.model_path)
    sizes = {}
    for target in ("float32", "int8"):
        compiler = TFLiteCompiler(dataset, tmp_path / f"{target}.tflite", model_framework="keras", target=target,
                                  representative_samples=18)
        sizes[target] = compiler.compile_model(wrapper)["size_bytes"]
    assert sizes["int8"] <= 0.40 * sizes["float32"], sizes


def test_incompatible_compiler_settings_are_refused(digits, tmp_path):
    with pytest.raises(ConfigurationError, match="needs --target int8 or edgetpu"):
        TFLiteCompiler(digits, tmp_path / "x.tflite", target="float32", inference_input_type="int8")
    with pytest.raises(ConfigurationError, match="cannot read a pytorch model: pass --model-framework onnx"):
        import torch  # noqa: F401

        from edge_ai_lib.modelwrappers.classification.pytorch_digits import PyTorchDigitsCNN
        wrapper = PyTorchDigitsCNN(tmp_path / "m.pt", digits, from_file=False)
        TFLiteCompiler(digits, tmp_path / "x.tflite", model_framework="keras").source_model(wrapper)


def test_edgetpu_without_its_compiler_is_a_clear_error(trained_keras_digits, digits, tmp_path, monkeypatch):
    # edgetpu_compiler exists only in Coral's own Debian repository, unreachable here: hide any PATH entry.
    monkeypatch.setenv("PATH", "/nonexistent")
    wrapper, _ = trained_keras_digits
    compiler = TFLiteCompiler(digits, tmp_path / "tpu.tflite", target="edgetpu", representative_samples=10)
    with pytest.raises(NotSupportedError, match="needs edgetpu_compiler"):
        compiler.compile(wrapper.model_path, wrapper)
    assert not list(tmp_path.glob("tpu.tflite*"))


def test_board_that_dies_mid_run_is_reported(trained_torch_digits, digits, tmp_path):
    wrapper, _ = trained_torch_digits
    compiler = ONNXRuntimeCompiler(digits, tmp_path / "m.onnx")
    compiler.compile_model(wrapper)
    with LocalBoard(log_path=tmp_path / "server.log") as board:
        host, port = board.start({"protocol": {"class": PROTOCOL},
                                  "runtime": {"class": ORT, "args": {"save_model_path": str(tmp_path / "board.onnx")}}})
        protocol = NetworkProtocol(host, port, timeout=10)
        protocol.initialize_client()
        ClientSession(protocol).upload_model(compiler.compiled_model_path.read_bytes())
        board.process.kill()
        board.process.wait()
        with pytest.raises(ConnectionLostError, match="server's log"):
            run_session(protocol, wrapper, digits, compiler.compiled_model_path.read_bytes(), progress=False)


def test_server_that_cannot_start_is_reported(tmp_path):
    board = LocalBoard(log_path=tmp_path / "server.log", startup_timeout=30)
    with pytest.raises(BoardError, match="exited with status") as error:
        board.start({"protocol": {"class": PROTOCOL},
                     "runtime": {"class": "edge_ai_lib.runtimes.nothing.NoRuntime", "args": {"save_model_path": "x"}}})
    assert "NoRuntime" in str(error.value)


def test_seed_commands_server_and_client_processes(trained_keras_digits, digits, tmp_path):
    """The seed's two commands, as two processes; the server picks its port (--port 0) and prints it."""
    wrapper, _ = trained_keras_digits
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "edge_ai_lib.scenarios.inference_server", PROTOCOL, TFLITE,
                               "--host", "127.0.0.1", "--port", "0", "--packet-size", "32768",
                               "--save-model-path", str(tmp_path / "board-model.tflite")],
                              stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO)
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:")
        port = line.strip().rsplit(":", 1)[1]
        client = run_module(
            "edge_ai_lib.scenarios.inference_client", KERAS_DIGITS, "edge_ai_lib.compilers.tflite.TFLiteCompiler",
            PROTOCOL, TFLITE, DIGITS, tmp_path / "report", "digits-int8", "--model-path", wrapper.model_path,
            "--model-framework", "keras", "--target", "int8", "--compiled-model-path", tmp_path / "digits-int8.tflite",
            "--inference-input-type", "int8", "--inference-output-type", "int8", "--host", "127.0.0.1",
            "--port", port, "--packet-size", "32768", "--save-model-path", tmp_path / "board-model.tflite",
            "--dataset-root", digits.root, "--inference-batch-size", "1", "--verbosity", "INFO")
        assert client.returncode == 0, client.stderr[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=10)
    document = json.loads((tmp_path / "report" / "digits-int8.json").read_text())
    assert document["kind"] == "inference_client"
    assert document["quality"]["accuracy"] >= 0.80
    assert document["compiled_model"]["settings"]["target"] == "int8"
    assert document["runtime"]["runtime"] == "ai-edge-litert"
    assert document["runtime"]["io"]["input"][0]["dtype"] == "int8"
    assert len(document["host_performance"]["samples_s"]) == 360
    assert len(document["protocol_overhead"]["samples_s"]) == 360
    assert document["compiled_model"]["load_time_s"] > 0
    assert (tmp_path / "report" / "digits-int8-inference-time.png").is_file()
    # A hand run without --run: the board is named by its address, the threads by what the runtime used.
    assert document["run"]["model"] is None and document["run"]["compiler"] is None
    assert document["run"]["board"] == f"127.0.0.1:{port}"
    assert document["run"]["threads"] == 1 and document["run"]["threads_reported_by_board"]
    assert document["board_provenance"]["packages"]["ai-edge-litert"]


def test_client_with_the_local_board_keeps_the_server_log(trained_torch_digits, digits, tmp_path):
    wrapper, _ = trained_torch_digits
    start = time.monotonic()
    client = run_module(
        "edge_ai_lib.scenarios.inference_client",
        "edge_ai_lib.modelwrappers.classification.pytorch_digits.PyTorchDigitsCNN",
        "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler", PROTOCOL, ORT, DIGITS, tmp_path / "report", "ort",
        "--model-path", wrapper.model_path, "--compiled-model-path", tmp_path / "ort.onnx",
        "--save-model-path", tmp_path / "board.onnx", "--dataset-root", digits.root, "--board", "edge_ai_lib.boards.local.LocalBoard",
        "--num-threads", "1", "--max-samples", "100", "--warmup", "3",
        "--run", json.dumps({"model": "torch-cnn", "compiler": "onnxruntime", "board": "local", "threads": 1}))
    assert client.returncode == 0, client.stderr[-3000:]
    document = json.loads((tmp_path / "report" / "ort.json").read_text())
    assert document["board"]["name"] == "local"
    assert document["runtime"]["num_threads"] == 1
    assert document["dataset"]["evaluated_sample_count"] == 100
    assert document["performance"]["warmup"]["count"] == 3
    assert "connected" in (tmp_path / "report" / "ort-server.log").read_text()
    assert time.monotonic() - start < 120

    run = document["run"]
    assert {k: run[k] for k in ("model", "compiler", "board", "threads")} == {
        "model": "torch-cnn", "compiler": "onnxruntime", "board": "local", "threads": 1}
    assert run["settings"]["compiler"]["class"] == "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler"
    assert run["settings"]["board"]["class"] == "edge_ai_lib.boards.local.LocalBoard"
    assert run["settings"]["runtime"]["args"]["num_threads"] == 1
    board = document["board_provenance"]
    assert board["packages"]["onnxruntime"] and board["cpu_count_logical"] >= 1 and board["python"]
    assert "cpu_governor" in board

    outputs = np.load(tmp_path / "report" / "ort-outputs.npy")
    assert document["outcomes"]["outputs_file"] == "ort-outputs.npy" and outputs.shape == (100, 10)
    assert document["outcomes"]["predicted_class"] == outputs.argmax(axis=1).tolist()
    assert document["outcomes"]["true_class"] == digits.get_split_arrays("validation")[1][:100].tolist()
    reference = wrapper.predict(digits.get_split_arrays("validation")[0][:100])
    np.testing.assert_allclose(outputs, reference, atol=1e-4)

    report = run_module("edge_ai_lib.scenarios.render_report", tmp_path / "out" / "report.html",
                        tmp_path / "report" / "ort.json")
    assert report.returncode == 0, report.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    entry = summary["torch-cnn/onnxruntime/local/t1"]
    assert entry["accuracy"] == document["quality"]["accuracy"] and entry["sample_count"] == 100
    assert entry["runtime_samples_per_second"] > 0 and entry["session_samples_per_second"] > 0
    assert entry["load_time_ms"] > 0 and entry["cold_first_inference_ms"] > 0
    assert "torch-cnn/onnxruntime/local/t1,torch-cnn,onnxruntime,local,1," in \
        (tmp_path / "out" / "summary.csv").read_text()
