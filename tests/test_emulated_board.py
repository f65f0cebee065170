"""The emulated aarch64 board: up (the cached rootfs restored), one benchmark per runtime, outputs as the host's, down.

The board is an arm64 Debian rootfs under qemu-user behind a native sshd on 127.0.0.1 chrooted into it
(edge_ai_lib.boards.emulated), in a directory of this test's own; the rootfs tarball is the shared cache's
(the first run on a machine builds it with mmdebstrap, ~6 min). Each runtime's model runs on the board and
on the local board; the board's outputs must be the host's. After `down`, no process, mount or listening
port of the board is left; the board's directory is removed whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DIGITS, KERAS_DIGITS, REPO, TORCH_DIGITS, missing

from edge_ai_lib.boards import emulated
from edge_ai_lib.core.agreement import agreement_with_host, is_emulated
from edge_ai_lib.core.results import read_result

pytestmark = pytest.mark.slow

PROTOCOL = "edge_ai_lib.runtimeprotocols.network.NetworkProtocol"
# name: (model class, fixture, compiler class, compiler args, runtime class, suffix, max abs error allowed)
RUNTIMES = {
    "onnxruntime": (TORCH_DIGITS, "trained_torch_digits", "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler", {},
                    "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime", ".onnx", 1e-5),
    "tflite-int8": (KERAS_DIGITS, "trained_keras_digits", "edge_ai_lib.compilers.tflite.TFLiteCompiler",
                    {"target": "int8", "inference_input_type": "int8", "inference_output_type": "int8",
                     "model_framework": "keras"}, "edge_ai_lib.runtimes.tflite.TFLiteRuntime", ".tflite", 1),
    "tvm": (TORCH_DIGITS, "trained_torch_digits", "edge_ai_lib.compilers.tvm.TVMCompiler", {},
            "edge_ai_lib.runtimes.tvm.TVMRuntime", ".so", 1e-4),
}
SAMPLES = 60
EM_AARCH64 = 183


def requirements_problem() -> str | None:
    if os.geteuid() != 0:
        return "the emulated board needs root (mounts, chroot, sshd)"
    for tool, package in (("/usr/sbin/sshd", "openssh-server"), ("ssh", "openssh-client"), ("zstd", "zstd"),
                          ("/usr/bin/qemu-aarch64-static", "qemu-user-static"), ("update-binfmts", "binfmt-support"),
                          ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    if not emulated.EmulatedBoardProvisioner(log=lambda _: None).tarball().is_file():
        for tool in ("mmdebstrap", "arch-test"):
            if shutil.which(tool) is None:
                return f"no cached rootfs, and {tool} (which builds one) is not installed (apt-get install {tool})"
    return None


@pytest.fixture(scope="module")
def board():
    """The board up in a directory of its own (the shared cache's rootfs); removed at the end, even on failure."""
    problem = requirements_problem()
    if problem:
        missing(f"{problem}; .ci/run installs it")
    provisioner = emulated.EmulatedBoardProvisioner(f"test-{os.getpid()}", port=0, log=print)
    started = time.monotonic()
    try:
        entry = provisioner.up()
        print(f"emulated board up in {time.monotonic() - started:.1f} s: {provisioner.timings}")
        yield provisioner, next(iter(entry.values()))
    finally:
        provisioner.remove()


@pytest.fixture(scope="module")
def compiled(request, digits, tmp_path_factory):
    """Each runtime's model compiled for the host and for aarch64 (the same file but for TVM)."""
    from edge_ai_lib.core.args import load_class

    directory = tmp_path_factory.mktemp("emulated-compiled")
    made = {}
    for name, (_, fixture, compiler_class, arguments, _, suffix, _) in RUNTIMES.items():
        wrapper, _ = request.getfixturevalue(fixture)
        compiler_type = load_class(compiler_class)
        for target in ("host", "aarch64"):
            extra = {"architecture": target} if name == "tvm" else {}
            if target == "aarch64" and name != "tvm":
                made[name, target] = made[name, "host"]
                continue
            path = directory / f"{name}-{target}{suffix}"
            compiler_type(digits, path, **arguments, **extra).compile_model(wrapper)
            made[name, target] = (wrapper, path, {**arguments, **extra})
    return made


def run_client(name: str, target: str, board_class: str, board_args: dict, compiled, digits, output: Path,
               board_name: str) -> subprocess.CompletedProcess:
    model_class, _, compiler_class, _, runtime, suffix, _ = RUNTIMES[name]
    wrapper, path, arguments = compiled[name, target]
    spec = {
        "model": {"class": model_class, "args": {"model_path": str(wrapper.model_path)}},
        "compiler": {"class": compiler_class, "args": {**arguments, "compiled_model_path": str(path)}},
        "protocol": {"class": PROTOCOL, "args": {"timeout": 120}},
        "runtime": {"class": runtime, "args": {"save_model_path": f"/root/received-{board_name}{suffix}",
                                               "num_threads": 1}},
        "dataset": {"class": DIGITS, "args": {"dataset_root": str(digits.root)}},
        "board": {"class": board_class, "args": {"board_name": board_name, "lock_timeout": 60, **board_args}},
        "options": {"output": str(output), "reportname": f"{name}-{board_name}", "skip_compilation": True,
                    "warmup": 3, "max_samples": SAMPLES,
                    "run": {"model": "digits", "compiler": f"{name}-{target}", "board": board_name, "threads": 1}},
    }
    if board_class.endswith("LocalBoard"):
        spec["runtime"]["args"]["save_model_path"] = str(output / f"received-{name}{suffix}")
    return subprocess.run([sys.executable, "-m", "edge_ai_lib.scenarios.inference_client", "--spec", json.dumps(spec)],
                          capture_output=True, text=True, cwd=REPO, timeout=900,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def ssh(provisioner, entry, *command: str) -> str:
    result = subprocess.run([*provisioner.ssh_command(entry["args"]["ssh_port"]), *command], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_board_is_aarch64_with_the_emulated_cpu_and_its_runtimes(board):
    provisioner, entry = board
    assert ssh(provisioner, entry, "uname", "-m") == "aarch64"
    assert "0xd0c" in ssh(provisioner, entry, "grep -m1 'CPU part' /proc/cpuinfo")  # Neoverse-N1
    assert ssh(provisioner, entry, "printenv", "QEMU_CPU") == emulated.QEMU_CPU
    python = entry["args"]["python"]
    versions = ssh(provisioner, entry, python, "-c",
                   "'import platform, onnxruntime, ai_edge_litert, edge_ai_lib; print(platform.machine(), "
                   "onnxruntime.__version__)'")
    assert versions.startswith("aarch64 1.")


def test_each_runtime_on_the_board_gives_the_hosts_outputs(board, compiled, digits, tmp_path):
    provisioner, entry = board
    assert struct.unpack("<H", compiled["tvm", "aarch64"][1].read_bytes()[18:20])[0] == EM_AARCH64
    results = []
    for name in RUNTIMES:
        for target, board_class, board_args, board_name in (
                ("host", "edge_ai_lib.boards.local.LocalBoard", {}, "local"),
                ("aarch64", entry["class"], entry["args"], "emulated")):
            started = time.monotonic()
            finished = run_client(name, target, board_class, board_args, compiled, digits, tmp_path, board_name)
            assert finished.returncode == 0, f"{name} on {board_name}:\n{finished.stdout}\n{finished.stderr[-4000:]}"
            path = tmp_path / f"{name}-{board_name}.json"
            results.append((path, read_result(path)))
            print(f"{name} on {board_name}: {time.monotonic() - started:.1f} s")
    emulated_runs = [document for _, document in results if is_emulated(document)]
    assert len(emulated_runs) == len(RUNTIMES)
    for document in emulated_runs:
        assert "aarch64" in json.dumps(document["board_provenance"])
        assert document["board"]["emulated"] is True
    agreements = agreement_with_host(results)
    medians = {(document["run"]["compiler"], document["run"]["board"]): document["performance"]["statistics"]["median"]
               for _, document in results}
    for path, agreement in sorted(agreements.items()):
        name = Path(path).name.split("-emulated")[0]
        ratio = medians[f"{name}-aarch64", "emulated"] / medians[f"{name}-host", "local"]
        print(f"{name}: {agreement.get('samples')} samples, max abs error {agreement.get('max_abs_error')}, "
              f"top-1 agreement {agreement.get('top1_agreement')}, emulated/native median latency {ratio:.1f}x")
        assert "error" not in agreement, agreement
        assert agreement["reference"]["board"] == "local"
        assert agreement["samples"] == SAMPLES
        assert agreement["max_abs_error"] <= RUNTIMES[name][-1]
        assert agreement["top1_agreement"] == 1.0


def test_down_leaves_no_process_mount_or_listening_port(board):
    provisioner, entry = board
    port = entry["args"]["ssh_port"]
    state = provisioner.read_state()
    stopped = provisioner.down()
    assert state["sshd_pid"] in stopped["stopped_pids"]
    assert str(provisioner.rootfs / "proc") in stopped["unmounted"]
    assert not emulated._mount_points_under(provisioner.directory)
    assert not emulated._processes_rooted_in(provisioner.rootfs)
    assert not Path(f"/proc/{state['sshd_pid']}").exists()
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert not listening.strip(), listening
    assert provisioner.status()["up"] is False
