"""Shared fixtures: temporary dataset roots, tiny trained models, and tool requirements."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
DIGITS = "edge_ai_lib.datasets.digits.DigitsDataset"
KERAS_DIGITS = "edge_ai_lib.modelwrappers.classification.tensorflow_digits.TensorFlowDigitsCNN"
TORCH_DIGITS = "edge_ai_lib.modelwrappers.classification.pytorch_digits.PyTorchDigitsCNN"


def missing(message: str) -> None:
    """Something a test needs is not here: skip on a developer's machine, fail in CI (CI is set), where
    .ci/run installs and starts everything the suite needs."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_tool(executable: str, why: str) -> str:
    """Path of an installed tool (see `missing` when it is not)."""
    path = shutil.which(executable)
    if not path:
        missing(f"{executable} is not installed ({why}); .ci/run installs it")
    return path


@contextlib.contextmanager
def chromium():
    """Headless Chromium (Debian's, driven by its chromedriver): a selenium driver, quit afterwards."""
    chromedriver = require_tool("chromedriver", "the report is checked in a real browser")
    require_tool("chromium", "the report is checked in a real browser")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1100", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for daemons that must be told their port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
