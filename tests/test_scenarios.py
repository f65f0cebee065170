"""The scenarios as a user runs them: `python -m edge_ai_lib.scenarios.X ...` in a subprocess."""

import json
import os

import pytest
from conftest import DIGITS, KERAS_DIGITS, TORCH_DIGITS, run_module


def test_help_after_class_paths_lists_every_classes_arguments():
    result = run_module("edge_ai_lib.scenarios.model_training", TORCH_DIGITS, DIGITS, "-h")
    assert result.returncode == 0, result.stderr
    for option in ("--model-path", "--dataset-root", "--download-dataset", "--logdir", "--batch-size",
                   "--learning-rate", "--num-epochs", "--verbosity"):
        assert option in result.stdout


def test_help_of_the_pet_model_lists_its_own_arguments():
    result = run_module("edge_ai_lib.scenarios.inference_performance",
                        "edge_ai_lib.modelwrappers.classification.tensorflow_pet_dataset.TensorFlowPetDatasetMobileNetV2",
                        "edge_ai_lib.datasets.pet_dataset.PetDataset", "-h")
    assert result.returncode == 0, result.stderr
    for option in ("--alpha", "--weights", "--weights-sha256", "--image-size", "--dataset-mirror", "--warmup",
                   "--max-samples"):
        assert option in result.stdout


def test_help_without_class_paths():
    result = run_module("edge_ai_lib.scenarios.model_training", "-h")
    assert result.returncode == 0 and "ModelWrapper class (dotted path)" in result.stdout
    assert "--spec" in result.stdout  # the other way to call it: the run as data


def test_unknown_class_path_is_one_clear_line():
    result = run_module("edge_ai_lib.scenarios.model_training",
                        "edge_ai_lib.modelwrappers.classification.pytorch_digits.PyTorchDigitCNN", DIGITS,
                        "--logdir", "x", "--model-path", "x.pt", "--dataset-root", "x")
    assert result.returncode == 2
    assert "has no class 'PyTorchDigitCNN'" in result.stderr and "PyTorchDigitsCNN" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_dataset_root_is_one_clear_line(tmp_path):
    result = run_module("edge_ai_lib.scenarios.inference_performance", TORCH_DIGITS, DIGITS, tmp_path / "r", "n",
                        "--model-path", tmp_path / "m.pt", "--dataset-root", tmp_path / "absent",
                        "--no-download-dataset")
    assert result.returncode == 1
    assert "does not hold a prepared DigitsDataset" in result.stderr and "Traceback" not in result.stderr


def test_missing_model_file_is_one_clear_line(tmp_path):
    result = run_module("edge_ai_lib.scenarios.inference_performance", TORCH_DIGITS, DIGITS, tmp_path / "r", "n",
                        "--model-path", tmp_path / "absent.pt", "--dataset-root", tmp_path / "digits")
    assert result.returncode == 1
    assert "absent.pt' does not exist" in result.stderr and "Traceback" not in result.stderr


def test_dataset_preparation_reports_the_splits(tmp_path):
    result = run_module("edge_ai_lib.scenarios.dataset_preparation", DIGITS, "--dataset-root", tmp_path / "d")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["splits"] == {"train": 1437, "validation": 360} and summary["classes"] == 10


@pytest.mark.slow
@pytest.mark.parametrize("wrapper,suffix", [(TORCH_DIGITS, "pt"), (KERAS_DIGITS, "keras")])
def test_train_export_and_benchmark_from_the_command_line(tmp_path, wrapper, suffix):
    model = tmp_path / f"digits.{suffix}"
    trained = run_module("edge_ai_lib.scenarios.model_training", wrapper, DIGITS, "--logdir", tmp_path / "logs",
                         "--dataset-root", tmp_path / "digits", "--model-path", model, "--batch-size", "32",
                         "--learning-rate", "0.001", "--num-epochs", "3")
    assert trained.returncode == 0, trained.stderr[-3000:]
    training = json.loads((tmp_path / "logs" / "training.json").read_text())
    assert len(training["history"]["val_accuracy"]) == 3 and training["history"]["val_accuracy"][-1] >= 0.8

    exported = run_module("edge_ai_lib.scenarios.onnx_export", wrapper, "--model-path", model,
                          "--onnx-path", tmp_path / "digits.onnx")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert "max |onnx - framework|" in exported.stdout and (tmp_path / "digits.onnx").stat().st_size > 1000

    report = tmp_path / "report"
    benchmarked = run_module("edge_ai_lib.scenarios.inference_performance", wrapper, DIGITS, report, "digits",
                             "--model-path", model, "--dataset-root", tmp_path / "digits", "--warmup", "5")
    assert benchmarked.returncode == 0, benchmarked.stderr[-3000:]
    document = json.loads((report / "digits.json").read_text())
    assert document["quality"]["accuracy"] >= 0.8
    assert document["dataset"]["split"] == "validation" and document["dataset"]["sample_count"] == 360
    performance = document["performance"]
    assert len(performance["samples_s"]) == 360 and performance["warmup"]["count"] == 5
    assert performance["cold_first_inference_s"] > 0
    stats = performance["statistics"]
    assert stats["min"] <= stats["median"] <= stats["p90"] <= stats["p99"] <= stats["max"]
    assert stats["median_ci95"][0] <= stats["median"] <= stats["median_ci95"][1]
    assert document["provenance"]["arguments"]["options"]["warmup"] == 5  # the run as data: roles and options
    assert document["provenance"]["arguments"]["model"]["class"] == wrapper
    for plot in ("inference-time", "inference-time-histogram", "confusion-matrix"):
        assert (report / f"digits-{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("scenario", ["inference_performance", "inference_client"])
def test_bad_evaluation_settings_are_refused(scenario, tmp_path):
    classes = [TORCH_DIGITS, DIGITS] if scenario == "inference_performance" else [
        TORCH_DIGITS, "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler",
        "edge_ai_lib.runtimeprotocols.network.NetworkProtocol", "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime", DIGITS]
    extra = [] if scenario == "inference_performance" else ["--compiled-model-path", tmp_path / "m.onnx",
                                                            "--save-model-path", tmp_path / "b.onnx"]
    result = run_module(f"edge_ai_lib.scenarios.{scenario}", *classes, tmp_path / "r", "n", "--model-path",
                        tmp_path / "m.pt", "--dataset-root", tmp_path / "d", "--max-samples", "0", *extra)
    assert result.returncode == 1
    assert "--max-samples must be at least 1, got 0" in result.stderr and "Traceback" not in result.stderr


def test_help_without_class_paths_says_more_options_follow_them(capsys):
    from edge_ai_lib.scenarios.model_compilation import main as compile_main

    with pytest.raises(SystemExit):
        compile_main(["-h"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "model ModelWrapper class (dotted path)" in shown
    assert "More options appear once the class paths are given (model, compiler, dataset missing here)" in shown


@pytest.mark.slow
def test_help_of_a_tensorflow_class_prints_no_framework_notices():
    """TensorFlow's C++ start-up lines (oneDNN, absl) go to descriptor 2 as it is imported, whatever
    TF_CPP_MIN_LOG_LEVEL says: -h loads the class with them silenced, and prints only the help."""
    import subprocess
    import sys

    environment = {name: value for name, value in os.environ.items() if not name.startswith(("TF_", "ABSL_"))}
    shown = subprocess.run([sys.executable, "-m", "edge_ai_lib.scenarios.model_training", KERAS_DIGITS, DIGITS, "-h"],
                           capture_output=True, text=True, timeout=300, env=environment)
    assert shown.returncode == 0 and "--learning-rate" in shown.stdout
    assert shown.stderr == ""
