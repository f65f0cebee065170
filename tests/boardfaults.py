"""Runtimes that fail the way real boards do, for the tests: a board that dies, a board that is slow.

They are real ONNX Runtime runtimes with one fault added (a board that crashes or a model that takes
long cannot be had otherwise on this machine); the server subprocess imports them through PYTHONPATH.
"""

import os
import time

from edge_ai_lib.runtimes.onnxruntime import ONNXRuntime


class DyingONNXRuntime(ONNXRuntime):
    """Kills its own process (as a segfaulting runtime would) at the inference number $EDGE_AI_DIE_AT."""

    calls = 0

    def invoke(self) -> None:
        DyingONNXRuntime.calls += 1
        if DyingONNXRuntime.calls >= int(os.environ.get("EDGE_AI_DIE_AT", "50")):
            os._exit(9)
        super().invoke()


class SlowONNXRuntime(ONNXRuntime):
    """Takes $EDGE_AI_SLOW_S seconds more per inference, like a big model on a small board."""

    def invoke(self) -> None:
        time.sleep(float(os.environ.get("EDGE_AI_SLOW_S", "0.05")))
        super().invoke()


class HangingONNXRuntime(ONNXRuntime):
    """Never returns (for $EDGE_AI_HANG_S, default an hour) from the inference number $EDGE_AI_HANG_AT."""

    calls = 0

    def invoke(self) -> None:
        HangingONNXRuntime.calls += 1
        if HangingONNXRuntime.calls >= int(os.environ.get("EDGE_AI_HANG_AT", "10")):
            time.sleep(float(os.environ.get("EDGE_AI_HANG_S", "3600")))
        super().invoke()
