"""Shared fixtures: temporary dataset roots, tiny trained models, and tool requirements."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
DIGITS = "edge_ai_lib.datasets.digits.DigitsDataset"
KERAS_DIGITS = "edge_ai_lib.modelwrappers.classification.tensorflow_digits.TensorFlowDigitsCNN"
TORCH_DIGITS = "edge_ai_lib.modelwrappers.classification.pytorch_digits.PyTorchDigitsCNN"


def require_tool(executable: str, why: str) -> str:
    """Path of an installed tool; skip without it on a developer's machine, fail in CI (CI is set)."""
    path = shutil.which(executable)
    if path:
        return path
    message = f"{executable} is not installed ({why}); .ci/run installs it"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_module(module: str, *args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m module args...` as a user would, capturing its output."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    from edge_ai_lib.datasets.digits import DigitsDataset

    return DigitsDataset(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def trained_keras_digits(digits, tmp_path_factory):
    """The Keras digits CNN trained 2 epochs (seconds), with its history and file."""
    from edge_ai_lib.modelwrappers.classification.tensorflow_digits import TensorFlowDigitsCNN

    directory = tmp_path_factory.mktemp("keras-digits")
    wrapper = TensorFlowDigitsCNN(directory / "digits.keras", digits, from_file=False)
    history = wrapper.train_model(32, 0.001, 2, directory / "logs")
    wrapper.save_model(wrapper.model_path)
    return wrapper, history


@pytest.fixture(scope="session")
def trained_torch_digits(digits, tmp_path_factory):
    from edge_ai_lib.modelwrappers.classification.pytorch_digits import PyTorchDigitsCNN

    directory = tmp_path_factory.mktemp("torch-digits")
    wrapper = PyTorchDigitsCNN(directory / "digits.pt", digits, from_file=False)
    history = wrapper.train_model(32, 0.001, 2, directory / "logs")
    wrapper.save_model(wrapper.model_path)
    return wrapper, history
