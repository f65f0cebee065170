"""Where and with what a result was obtained: package versions, CPU, OS, threads, arguments.

A result carries its own provenance so that two results can be compared without knowing the
machines they came from, and a surprising number can be traced to a version or a thread setting.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# Packages whose versions are recorded when installed: frameworks, converters, compilers, runtimes.
PROVENANCE_PACKAGES = (
    "edge_ai_lib", "numpy", "scipy", "scikit-learn", "tensorflow-cpu", "tensorflow", "keras", "torch",
    "onnx", "onnxruntime", "onnxscript", "onnxsim", "tf2onnx", "onnx2tf", "onnx2torch",
    "ai-edge-litert", "tflite-runtime", "apache-tvm", "apache-tvm-ffi", "psutil",
)

# Environment variables that change how many threads a framework uses, hence its speed.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def _cpu_model() -> str:
    """The CPU's model name; ARM boards name it under "Hardware" or "Processor" in /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor")) and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value and not value.isdigit():
                    return value
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _os_release() -> str:
    """The distribution's own name ("Debian GNU/Linux 12"), more telling than the kernel's."""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def _git_commit() -> str | None:
    """The library's commit when run from a checkout; None for an installed package or without git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def collect_provenance(arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provenance section of a result, collected on the machine that calls it.

    Parameters
    ----------
    arguments : dict[str, Any] | None
        The run's arguments (e.g. `vars(args)`); paths are stored as strings.

    Returns
    -------
    dict[str, Any]
        JSON-ready: time, host, Python, OS, CPU, memory, thread settings, package versions, commit,
        arguments.
    """
    import psutil

    versions = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "python": platform.python_version(),
        "os": _os_release(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count_logical": psutil.cpu_count(logical=True),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "memory_total_bytes": psutil.virtual_memory().total,
        "thread_settings": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
        "packages": versions,
        "git_commit": _git_commit(),
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in (arguments or {}).items()},
    }
