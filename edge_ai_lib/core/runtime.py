"""The Runtime interface: inference of a compiled model on a board (server side)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge_ai_lib.core.args import ArgumentsMixin
from edge_ai_lib.core.runtimeprotocol import RuntimeProtocol


class Runtime(ArgumentsMixin):
    """Loads a compiled model on the board, takes inputs, runs them and hands back outputs.

    The board side needs only this, a RuntimeProtocol and one runtime package: no training framework.

    Parameters
    ----------
    protocol : RuntimeProtocol
        The transport to the host (None when the runtime is used in-process).
    save_model_path : Path
        Where the received model is stored on the board.
    """

    arguments_title = "Runtime arguments"

    def __init__(self, protocol: RuntimeProtocol | None, save_model_path: Path):
        self.protocol = protocol
        self.save_model_path = Path(save_model_path)

    def prepare_model(self, model_bytes: bytes | None) -> None:
        """Store the model (when bytes are given) and load it for inference."""
        raise NotImplementedError

    def prepare_input(self, data: bytes) -> None:
        """Decode the inputs of the next inference."""
        raise NotImplementedError

    def run(self) -> None:
        """Run inference on the prepared inputs."""
        raise NotImplementedError

    def upload_output(self) -> bytes:
        """The outputs of the last inference, encoded for the host."""
        raise NotImplementedError

    def statistics(self) -> dict[str, Any]:
        """Board-side statistics (inference times, resource use); empty when there are none."""
        return {}

    def get_framework_and_version(self) -> tuple[str, str]:
        raise NotImplementedError

    @classmethod
    def form_argparse(cls):
        parser, group = super().form_argparse()
        group.add_argument("--save-model-path", type=Path, required=True,
                           help="Where the board stores the received model")
        return parser, group

    @classmethod
    def from_argparse(cls, protocol: RuntimeProtocol | None, args: argparse.Namespace) -> "Runtime":
        return cls(protocol, args.save_model_path)
