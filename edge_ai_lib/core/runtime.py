"""The Runtime interface: inference of a compiled model on a board (server side)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.args import Argument, ArgumentsMixin
from edge_ai_lib.core.errors import RuntimeFailure


class Runtime(ArgumentsMixin):
    """Loads a compiled model on the board, takes inputs, runs them and hands back outputs.

    The board side needs only this, a RuntimeProtocol and one runtime package: no training framework.
    Subclasses implement `load_model`, `set_inputs`, `invoke`, `get_outputs`,
    `get_framework_and_version` and `describe_io`; the timing around the load and the runtime call is
    here. Serving clients (the session, where received models are stored, the statistics) is
    `core.serving.InferenceServer`'s, so a runtime can be used in-process as well as on a board.

    Parameters
    ----------
    save_model_path : Path
        Where the server stores a received model (see `core.serving.InferenceServer`).
    **settings
        The other arguments (see `arguments`), kept as attributes.
    """

    arguments_title = "Runtime arguments"
    arguments = (
        Argument("save_model_path", Path, help="Where the board stores the received model"),
        Argument("num_threads", int, None, "Threads the runtime may use (default: the runtime's own choice)"),
        Argument("resource_interval", float, 0.1,
                 "Seconds between samples of the board's CPU and memory use; 0 turns sampling off"),
    )

    def __init__(self, save_model_path: Path | None = None, **settings: Any):
        self.configure({"save_model_path": save_model_path, **settings} if save_model_path is not None
                       else settings)

    # -- to implement ------------------------------------------------------------------------------
    def load_model(self, path: Path) -> None:
        raise NotImplementedError

    def set_inputs(self, tensors: list[np.ndarray]) -> None:
        raise NotImplementedError

    def invoke(self) -> None:
        raise NotImplementedError

    def get_outputs(self) -> list[np.ndarray]:
        raise NotImplementedError

    def get_framework_and_version(self) -> tuple[str, str]:
        raise NotImplementedError

    def describe_io(self) -> dict[str, Any]:
        """Inputs and outputs of the loaded model: names, shapes, dtypes, quantization."""
        raise NotImplementedError

    def threads_in_use(self) -> int | None:
        """The threads the loaded model actually runs on: `num_threads`, or the runtime's own default.

        A result is keyed by this count, so a runtime whose default is not `num_threads` says what it
        is; None when it cannot be known.
        """
        return self.num_threads

    # -- timing around the runtime ------------------------------------------------------------------
    def load_and_describe(self, path: Path) -> dict[str, Any]:
        """Load the model at `path`, timing the load; returns what the host is told of it.

        The load time and the model's size are reported because a board's limits (flash, RAM, start-up)
        matter as much as its inference time.
        """
        start = time.perf_counter()
        self.load_model(path)
        load_time = time.perf_counter() - start
        framework, version = self.get_framework_and_version()
        return {"load_time_s": load_time, "model_size_bytes": path.stat().st_size,
                "runtime": framework, "runtime_version": version, "num_threads": self.num_threads,
                "threads": self.threads_in_use(), "io": self.describe_io()}

    def run(self) -> float:
        """Run inference on the inputs set last; returns the time of the runtime call alone, in seconds.

        Only `invoke` is inside the clock: decoding inputs and encoding outputs are the transport's
        cost, measured on the host side.
        """
        start = time.perf_counter()
        self.invoke()
        return time.perf_counter() - start


def check_batch(tensor: np.ndarray, expected: list[int], name: str) -> None:
    """Check a tensor against a shape whose -1 entries are free; raise a clear RuntimeFailure."""
    if tensor.ndim != len(expected) or any(e not in (-1, None) and e != d for e, d in zip(expected, tensor.shape)):
        raise RuntimeFailure(f"input '{name}' of shape {tuple(tensor.shape)} does not fit the model's input "
                             f"{tuple(expected)}: check the model wrapper's preprocessing")
