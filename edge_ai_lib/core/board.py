"""The Board interface: a machine that runs the inference server."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_ai_lib.core.args import ArgumentsMixin


class Board(ArgumentsMixin):
    """Where a compiled model runs: deploys it, starts and stops the inference server there.

    Implementations: `boards.local` (a subprocess on loopback) and `boards.ssh` (Fabric).

    Parameters
    ----------
    name : str
        The board's key in the configuration.
    architecture : str
        The CPU architecture of the board (x86_64, aarch64, armv7...), matched against compiler targets.
    """

    arguments_title = "Board arguments"

    def __init__(self, name: str, architecture: str):
        self.name = name
        self.architecture = architecture

    def deploy(self, compiled_model_path: Path) -> str:
        """Copy the compiled model to the board; returns its path there."""
        raise NotImplementedError

    def start_server(self, protocol_class: str, runtime_class: str, arguments: list[str]) -> tuple[str, int]:
        """Start `inference_server` on the board; returns the (host, port) the client connects to."""
        raise NotImplementedError

    def stop_server(self, log_path: Path | None = None) -> None:
        """Stop the server and keep its log at `log_path`."""
        raise NotImplementedError

    @classmethod
    def form_argparse(cls):
        parser, group = super().form_argparse()
        group.add_argument("--board-name", default="local", help="Name of the board (default: %(default)s)")
        group.add_argument("--board-architecture", default="x86_64",
                           help="CPU architecture of the board (default: %(default)s)")
        return parser, group

    @classmethod
    def from_argparse(cls, args: argparse.Namespace) -> "Board":
        return cls(args.board_name, args.board_architecture)
