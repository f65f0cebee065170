"""The board side of the library runs on the Pythons boards ship (3.9 to 3.12), the host on 3.11.

The board-side modules are those the inference server imports with each runtime, and the board's
lock; they are found by importing them (in a subprocess) and checked with vermin for 3.9 syntax and
standard-library use.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from conftest import REPO

BOARD_ENTRY_POINTS = ("edge_ai_lib.scenarios.inference_server", "edge_ai_lib.runtimeprotocols.network",
                      "edge_ai_lib.runtimes.onnxruntime", "edge_ai_lib.runtimes.tflite", "edge_ai_lib.runtimes.tvm",
                      "edge_ai_lib.boards.lock")


def board_side_modules() -> list[str]:
    probe = ("import importlib, json, sys\n"
             f"for name in {list(BOARD_ENTRY_POINTS)!r}:\n"
             "    importlib.import_module(name)\n"
             "print(json.dumps(sorted({m.__file__ for n, m in list(sys.modules.items())\n"
             "    if n.startswith('edge_ai_lib') and getattr(m, '__file__', None)})))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(out.stdout)


def test_board_side_modules_need_no_python_newer_than_3_9():
    modules = board_side_modules()
    assert any(path.endswith("inference_server.py") for path in modules)
    assert not any("/modelwrappers/" in path or "/compilers/" in path for path in modules), \
        "the server imports host-side modules"
    vermin = shutil.which("vermin") or str(REPO / ".venv" / "bin" / "vermin")
    result = subprocess.run([vermin, "--target=3.9-", "--violations", "--no-tips", "--no-parse-comments", *modules],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"board-side modules need a Python newer than 3.9:\n{result.stdout}{result.stderr}"
