"""Where and with what a result was obtained: package versions, CPU, OS, threads, arguments.

A result carries its own provenance so that two results can be compared without knowing the
machines they came from, and a surprising number can be traced to a version or a thread setting.
The host collects its own (`collect_provenance`); a board collects its own (`machine_provenance`)
and sends it with its answer to MODEL, since only the board can see its CPU, OS and governor.
Nothing here imports a framework: versions come from the installed packages' metadata.
"""

from __future__ import annotations

import datetime as _dt
import functools
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


def cpu_governor() -> str | None:
    """The first CPU's frequency governor ("performance", "ondemand"...), None where Linux does not say.

    A board on "ondemand" or "powersave" runs its first inferences at a low clock: a reason for a slow
    or noisy result that the times alone do not show.
    """
    try:
        return Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip() or None
    except OSError:
        return None


def physical_cores_available() -> int | None:
    """Physical cores among the CPUs this process may run on (affinity and cpusets respected).

    What a runtime that defaults to "one thread per physical core" (ONNX Runtime) takes. Read from
    Linux's CPU topology; elsewhere psutil's count of the machine's physical cores, or None.
    """
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = []
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topology.joinpath("physical_package_id").read_text().strip(),
                       topology.joinpath("core_id").read_text().strip()))
        except OSError:
            cores = set()
            break
    if cores:
        return len(cores)
    try:
        import psutil
    except ImportError:
        return None
    return psutil.cpu_count(logical=False)


def package_versions(names=PROVENANCE_PACKAGES) -> dict[str, str]:
    """The versions of those of `names` that are installed, from their metadata (nothing is imported)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@functools.lru_cache(maxsize=1)
def _machine() -> dict[str, Any]:
    """What does not change while a process runs; collected once (package metadata takes a while)."""
    try:
        import psutil

        physical, memory = psutil.cpu_count(logical=False), psutil.virtual_memory().total
    except ImportError:  # a minimal board: psutil is only needed for resource sampling
        physical, memory = None, None
    return {
        "hostname": platform.node(),
        "python": platform.python_version(),
        "os": _os_release(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count_logical": os.cpu_count(),
        "cpu_count_physical": physical,
        "memory_total_bytes": memory,
        "packages": package_versions(),
    }


def machine_provenance() -> dict[str, Any]:
    """This machine's CPU, cores, OS, kernel, Python, package versions and CPU governor.

    What a board reports of itself with its answer to MODEL (see docs/protocol.md); the host's own
    provenance has the same fields.

    Returns
    -------
    dict[str, Any]
        JSON-ready: hostname, python, os, kernel, machine, cpu, cpu_count_logical,
        cpu_count_physical, memory_total_bytes, packages (name to version), cpu_governor (None where
        unreadable), thread_settings (the thread variables set in the environment), load_average (of
        the last 1, 5 and 15 minutes, as the machine was when asked; None where the OS does not say):
        a busy machine is a reason for a slow or noisy result that the times alone do not show.
    """
    machine = _machine()
    return {**machine, "packages": dict(machine["packages"]), "cpu_governor": cpu_governor(),
            "thread_settings": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
            "load_average": _load_average()}


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


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
        JSON-ready: time, the fields of `machine_provenance` (host, Python, OS, CPU, memory, governor,
        thread settings, package versions), commit, arguments.
    """
    return {
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **machine_provenance(),
        "git_commit": _git_commit(),
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in (arguments or {}).items()},
    }
