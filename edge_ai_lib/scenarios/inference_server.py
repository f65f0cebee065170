"""Serve inference on a board: wait for a client, load its model, run what it sends.

    python -m edge_ai_lib.scenarios.inference_server PROTOCOL RUNTIME --host 127.0.0.1 --port 12345 \\
        --packet-size 32768 --save-model-path build/board-model.tflite

Prints `listening on HOST:PORT` once it accepts clients (with --port 0, the port it picked).
Stops cleanly on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Sequence

from edge_ai_lib.core.runtime import Runtime
from edge_ai_lib.core.runtimeprotocol import RuntimeProtocol
from edge_ai_lib.scenarios.cli import ClassArgument, parse_scenario_arguments, run_scenario


def main(argv: Sequence[str] | None = None) -> None:
    args, classes = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [ClassArgument("protocolcls", RuntimeProtocol, "RuntimeProtocol class (dotted path)"),
         ClassArgument("runtimecls", Runtime, "Runtime class (dotted path)")], argv=argv)
    protocol = classes["protocolcls"].from_argparse(args)
    runtime = classes["runtimecls"].from_argparse(protocol, args)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    protocol.initialize_server()
    print(f"listening on {protocol.host}:{protocol.port}", flush=True)
    runtime.serve(stop)
    print("server stopped", flush=True)


if __name__ == "__main__":
    sys.exit(run_scenario(main))
