"""What every model of a framework shares (tensorflow.py, pytorch.py), and the table that names them.

This module imports no framework: the workflow reads `FRAMEWORKS` while it parses its config, on hosts
that need not have TensorFlow or torch installed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Framework:
    """A framework as a config names it (`framework: keras`): where its wrappers' base class lives,
    and the extension of the model files it saves."""

    name: str
    module: str
    model_extension: str


FRAMEWORKS: dict[str, Framework] = {
    framework.name: framework
    for framework in (
        Framework("keras", "edge_ai_lib.modelwrappers.frameworks.tensorflow", "keras"),
        Framework("pytorch", "edge_ai_lib.modelwrappers.frameworks.pytorch", "pt"),
    )
}
