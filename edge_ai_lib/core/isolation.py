"""One call in a child process with a time limit and a memory cap, whatever the call does.

A converter that raises, segfaults, loops or eats memory must cost one cell of a grid, not the grid.
`run_isolated` starts a fresh interpreter (`python -m edge_ai_lib.core.isolation REQUEST`) that
imports the function by its path (`package.module:function`), calls it with JSON arguments and writes
its JSON-ready return value; the parent waits at most `timeout` seconds, caps the child's address
space with RLIMIT_AS, and says what happened as an `Outcome`. Nothing here imports a framework.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

OK = "ok"
FAILED = "failed"
CRASHED = "crashed"
TIMEOUT = "timeout"
OUT_OF_MEMORY = "out of memory"

# How allocators say they hit the cap: Python, C++ (std::bad_alloc), torch, onnxruntime, TensorFlow, TVM.
MEMORY_WORDS = re.compile(r"MemoryError|bad_alloc|can't allocate memory|Cannot allocate memory|"
                          r"[Ff]ailed to allocate|out of memory|OOM when allocating|ResourceExhausted", re.I)


@dataclass(frozen=True)
class Outcome:
    """What became of an isolated call: `status` (ok, failed, crashed, timeout, out of memory), the
    call's return value when ok, one line saying what went wrong otherwise, and its wall time."""

    status: str
    value: Any = None
    message: str = ""
    seconds: float = 0.0


def _cap_memory(limit_bytes: int | None) -> None:
    if limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-600:]


def run_isolated(call: str, arguments: dict[str, Any], timeout: float, memory_limit_mb: int | None,
                 log_path: Path | None = None, extra_path: Sequence[str] = ()) -> Outcome:
    """Run `call` (`package.module:function`) with `arguments` in a child process.

    Parameters
    ----------
    call : str
        The function, importable in a fresh interpreter; it returns JSON-ready data.
    arguments : dict
        Its keyword arguments, JSON-ready.
    timeout : float
        Seconds before the child (and anything it started in its process group) is killed.
    memory_limit_mb : int | None
        The child's address-space cap (RLIMIT_AS) in MiB; None: no cap. Frameworks reserve far more
        address space than they touch (TensorFlow ~1.3 GiB at import; exporting ResNet50 with tf2onnx
        needs more than 6 GiB), so give several GiB.
    log_path : Path | None
        Where the child's stdout and stderr go (kept for reading); a temporary file when None.
    extra_path : sequence of str
        Directories put first on the child's PYTHONPATH (this interpreter's sys.path follows), so a
        function defined outside the package (a test's) can be imported.
    """
    with tempfile.TemporaryDirectory(prefix="edge-ai-isolated-") as directory:
        request = Path(directory) / "request.json"
        result = Path(directory) / "result.json"
        log = Path(log_path) if log_path is not None else Path(directory) / "output.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        request.write_text(json.dumps({"call": call, "arguments": arguments, "result": str(result)}))
        python_path = [*extra_path, *(p for p in sys.path if p)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(python_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
        limit = memory_limit_mb * 1024 * 1024 if memory_limit_mb else None
        start = time.perf_counter()
        with open(log, "wb") as output:
            child = subprocess.Popen([sys.executable, "-m", "edge_ai_lib.core.isolation", str(request)],
                                     stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, preexec_fn=lambda: _cap_memory(limit))
            try:
                returncode = child.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                return Outcome(TIMEOUT, message=f"no answer in {timeout:g} s: killed (raise the timeout if the "
                                                "step is only slow)", seconds=time.perf_counter() - start)
            except BaseException:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                raise
        seconds = time.perf_counter() - start
        if result.is_file():
            answer = json.loads(result.read_text())
            if answer["ok"]:
                return Outcome(OK, answer["value"], seconds=seconds)
            message = f"{answer['error_type']}: {answer['message']}"
            status = OUT_OF_MEMORY if answer["error_type"] == "MemoryError" or MEMORY_WORDS.search(message) \
                else FAILED
            return Outcome(status, message=message, seconds=seconds)
        tail = _tail(log)
        if returncode < 0:
            name = signal.Signals(-returncode).name
            if MEMORY_WORDS.search(tail) or name == "SIGKILL":
                return Outcome(OUT_OF_MEMORY, message=f"killed by {name} past the memory cap of "
                                                      f"{memory_limit_mb} MiB ({tail})", seconds=seconds)
            return Outcome(CRASHED, message=f"the process died of {name} ({tail or 'no output'})", seconds=seconds)
        if MEMORY_WORDS.search(tail):
            return Outcome(OUT_OF_MEMORY, message=f"exit status {returncode} past the memory cap of "
                                                  f"{memory_limit_mb} MiB ({tail})", seconds=seconds)
        return Outcome(CRASHED, message=f"the process exited with status {returncode} without an answer "
                                        f"({tail or 'no output'})", seconds=seconds)


def _die_with_parent() -> None:
    """SIGKILL from Linux when the parent dies: a killed grid leaves no converter running."""
    if not sys.platform.startswith("linux"):
        return
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _function(call: str):
    module, _, name = call.partition(":")
    value: Any = importlib.import_module(module)
    for part in name.split("."):
        value = getattr(value, part)
    return value


def main(argv: Sequence[str]) -> None:
    _die_with_parent()
    request = json.loads(Path(argv[1]).read_text())
    try:
        answer = {"ok": True, "value": _function(request["call"])(**request["arguments"])}
    except BaseException as error:  # the answer says what went wrong, whatever it was
        traceback.print_exc()
        text = " ".join(str(error).split()) or "(no message)"
        answer = {"ok": False, "error_type": type(error).__name__, "message": text[:1500]}
    result = Path(request["result"])
    partial = result.with_suffix(".partial")
    partial.write_text(json.dumps(answer))
    partial.replace(result)
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter teardown: some frameworks crash or hang at exit, after the answer is written.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
