"""SSH boards against a real OpenSSH sshd on loopback: deploy, benchmark through the tunnel, faults.

The board is this machine reached through sshd (tests/sshd.py) with its own work directory, virtual
environment and wheelhouse (installed with --no-index: the board has no route out). After every test
nothing of ours is left running on the board and no port of ours is left listening.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DIGITS, REPO, TORCH_DIGITS
from latency_proxy import LatencyProxy
from sshd import (
    bytes_sent,
    listening_ports,
    make_key,
    network_namespace,
    ours_on_board,
    start_sshd,
    veth_host_side,
)
from test_files import mount_tmpfs  # noqa: F401 - the fixture

from edge_ai_lib.boards.ssh import SSHBoard
from edge_ai_lib.core.errors import BoardError

PROTOCOL = "edge_ai_lib.runtimeprotocols.network.NetworkProtocol"
ORT = "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime"
SSH_BOARD = "edge_ai_lib.boards.ssh.SSHBoard"
BOARD_PYTHON = "/usr/bin/python3.11" if Path("/usr/bin/python3.11").is_file() else sys.executable


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("board")


def board_settings(sshd, board_dir: Path, **extra) -> dict:
    return sshd.board_args(**{"board_name": "loop", "workdir": str(board_dir / "work"), "packages": "wheelhouse",
                              "python": BOARD_PYTHON, "lock_timeout": 30, **extra})


def server_spec(tmp_path: Path, runtime: str = ORT, protocol_args: dict | None = None) -> dict:
    return {"protocol": {"class": PROTOCOL, "args": protocol_args or {}},
            "runtime": {"class": runtime, "args": {"save_model_path": str(tmp_path / "board-model.onnx")}}}


def assert_nothing_left(board_dir: Path, sshd, ports: set[int] = frozenset(), workdir: Path | None = None) -> None:
    """No server of this board's work directory, no tunnel to this sshd, none of `ports` listening."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = ours_on_board(str(workdir or board_dir / "work")) + ours_on_board(f"-p {sshd.port} ")
        open_ports = listening_ports() & set(ports)
        if not left and not open_ports:
            return
        time.sleep(0.1)
    raise AssertionError(f"left running: {left}; still listening: {open_ports}")


@pytest.fixture(scope="module")
def deployed(sshd, board_dir):
    """The board's work directory with this build installed (the first deploy), and its time."""
    board = SSHBoard(**board_settings(sshd, board_dir))
    started = time.monotonic()
    with board:
        board.deploy(server_spec(board_dir))
    assert board.deployed == "installed"
    return time.monotonic() - started


@pytest.fixture(scope="module")
def onnx_digits(trained_torch_digits, digits, tmp_path_factory):
    from edge_ai_lib.compilers.onnxruntime import ONNXRuntimeCompiler

    wrapper, _ = trained_torch_digits
    compiler = ONNXRuntimeCompiler(digits, tmp_path_factory.mktemp("onnx") / "digits.onnx")
    compiler.compile_model(wrapper)
    return wrapper, compiler.compiled_model_path


def run_client(sshd, board_dir, onnx_digits, digits, output: Path, runtime: str = ORT, board: dict | None = None,
               protocol: dict | None = None, max_samples: int = 100, timeout: float = 300,
               runtime_args: dict | None = None) -> subprocess.CompletedProcess:
    """inference_client with the SSH board, as the workflow runs it (--spec)."""
    wrapper, compiled = onnx_digits
    spec = {
        "model": {"class": TORCH_DIGITS, "args": {"model_path": str(wrapper.model_path)}},
        "compiler": {"class": "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler",
                     "args": {"compiled_model_path": str(compiled)}},
        "protocol": {"class": PROTOCOL, "args": protocol or {}},
        "runtime": {"class": runtime, "args": {"save_model_path": str(board_dir / "received.onnx"), "num_threads": 1,
                                               **(runtime_args or {})}},
        "dataset": {"class": DIGITS, "args": {"dataset_root": str(digits.root)}},
        "board": {"class": SSH_BOARD, "args": {**board_settings(sshd, board_dir), "runtime_extra": "onnxruntime",
                                               **(board or {})}},
        "options": {"output": str(output), "reportname": "ssh", "skip_compilation": True, "warmup": 2,
                    "max_samples": max_samples,
                    "run": {"model": "torch-cnn", "compiler": "onnxruntime", "board": "loop", "threads": 1}},
    }
    return subprocess.run([sys.executable, "-m", "edge_ai_lib.scenarios.inference_client", "--spec", json.dumps(spec)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO / "tests")})


# -- connection faults: no deploy needed, seconds each --------------------------------------------------
def test_a_wrong_key_is_an_authentication_error_naming_the_board(sshd, tmp_path):
    other = make_key(tmp_path / "other_key")
    board = SSHBoard(**sshd.board_args(board_name="loop", key_filename=str(other), workdir=str(tmp_path / "w")))
    with pytest.raises(BoardError) as error, board:
        board.deploy()
    assert f"board 'loop': authentication as {sshd.user} at 127.0.0.1:{sshd.port} failed with {other}" \
        in str(error.value)
    assert "authorized_keys" in str(error.value)


def test_an_unknown_host_key_is_refused_with_how_to_add_it(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    settings = {**sshd.board_args(board_name="loop", workdir=str(tmp_path / "w")), "host_key": None,
                "known_hosts": str(known)}
    with pytest.raises(BoardError) as error, SSHBoard(**settings) as board:
        board.deploy()
    message = str(error.value)
    assert f"board 'loop' (127.0.0.1:{sshd.port}) presented the host key ssh-ed25519 SHA256:" in message
    assert f"which is not in {known}" in message and f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known}" in message
    assert known.read_text() == ""  # refused, not added

    known.write_text(sshd.host_key_entry + "\n")  # added as the message says: now it connects
    with SSHBoard(**settings) as board:
        assert board.board_facts()["python"]


def test_a_changed_host_key_is_refused(sshd, tmp_path):
    other = make_key(tmp_path / "other_host")
    settings = {**sshd.board_args(board_name="loop", workdir=str(tmp_path / "w")),
                "host_key": other.with_suffix(".pub").read_text().rsplit(" ", 1)[0]}
    with pytest.raises(BoardError, match="host_key setting holds a different one .* set host_key to the board.s new public key"), SSHBoard(**settings) as board:
        board.deploy()


def test_an_unreachable_board_fails_within_the_connect_timeout(tmp_path):
    with network_namespace(7) as namespace:
        # The namespace's replies to this host go nowhere: a board that never answers.
        subprocess.run(["ip", "netns", "exec", namespace, "ip", "route", "add", "blackhole", "10.200.7.1/32"],
                       check=True, timeout=30)
        board = SSHBoard(ssh_host="10.200.7.2", ssh_port=22, user="nobody", board_name="far",
                         host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIeI9Tt4qRBE3n2Myso53vnj6LBXhK5zXgJmqqI1WZ9A",
                         connect_timeout=2, workdir=str(tmp_path / "w"))
        started = time.monotonic()
        with pytest.raises(BoardError) as error, board:
            board.deploy()
        assert time.monotonic() - started < 6
    assert "board 'far': cannot reach 10.200.7.2:22 within 2 s" in str(error.value)


# -- deploy, benchmark, faults on a deployed board --------------------------------------------------
@pytest.mark.slow
def test_deploy_installs_once_then_finds_the_board_up_to_date(sshd, board_dir, deployed):
    # The checkout may change under a running test (a developer's edits): then the board is rightly
    # reinstalled once more, and the next deploy finds it up to date.
    for _ in range(3):
        board = SSHBoard(**board_settings(sshd, board_dir))
        started = time.monotonic()
        with board:
            board.deploy(server_spec(board_dir))
        repeat = time.monotonic() - started
        if board.deployed == "up to date":
            break
    assert board.deployed == "up to date"
    print(f"\ndeploy: first {deployed:.1f} s, repeated {repeat:.2f} s")
    record = json.loads((board_dir / "work" / "installed.json").read_text())
    assert record["extra"] == "onnxruntime" and record["packages"] == "wheelhouse"
    assert len(record["wheel_sha256"]) == 64
    assert repeat < 10


@pytest.mark.slow
def test_full_benchmark_through_the_sshd_board(sshd, board_dir, deployed, onnx_digits, digits, tmp_path):
    result = run_client(sshd, board_dir, onnx_digits, digits, tmp_path / "report")
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads((tmp_path / "report" / "ssh.json").read_text())
    assert document["run"]["board"] == "loop" and document["run"]["threads"] == 1
    # "installed" again when the checkout changed since the first deploy (a developer's edits)
    assert document["board"]["class"] == SSH_BOARD and document["board"]["deploy"] in ("up to date", "installed")
    assert document["dataset"]["evaluated_sample_count"] == 100
    assert document["quality"]["accuracy"] > 0.5
    assert document["board_provenance"]["packages"]["onnxruntime"]
    log = (tmp_path / "report" / "ssh-server.log").read_text()
    assert "listening on 127.0.0.1:" in log and "server stopped" in log
    port = int(log.split("listening on 127.0.0.1:")[1].split()[0])
    assert_nothing_left(board_dir, sshd, {port})
    assert not list((board_dir / "work" / "logs").glob("*.log"))  # fetched, not left on the board


@pytest.mark.slow
def test_a_board_without_the_runtime_package_names_the_package_and_the_extra(sshd, board_dir, deployed, tmp_path):
    bare = tmp_path / "bare-venv"
    wheel = next((board_dir / "work" / "wheels").glob("edge_ai_lib-*.whl"))
    subprocess.run([BOARD_PYTHON, "-m", "venv", str(bare)], check=True, timeout=120)
    subprocess.run([str(bare / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--find-links",
                    str(board_dir / "work" / "wheelhouse"), str(wheel)], check=True, timeout=300,
                   env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    board = SSHBoard(**board_settings(sshd, board_dir, no_install=True, python=str(bare / "bin" / "python"),
                                      log_path=str(tmp_path / "server.log")))
    with pytest.raises(BoardError) as error, board:
        board.deploy(server_spec(tmp_path))
        board.start(server_spec(tmp_path))
    assert str(error.value) == (f"board 'loop': its Python {bare / 'bin' / 'python'} lacks the package 'onnxruntime' "
                                "(of the runtime extra 'onnxruntime'): install it there (pip install "
                                "'edge_ai_lib[onnxruntime]'), or drop no_install so the benchmark installs it")
    assert_nothing_left(board_dir, sshd)


@pytest.mark.slow
def test_a_server_killed_mid_run_names_the_board_and_leaves_no_result(sshd, board_dir, deployed, onnx_digits, digits,
                                                                      tmp_path):
    result = run_client(sshd, board_dir, onnx_digits, digits, tmp_path / "report", runtime="boardfaults.DyingONNXRuntime",
                        board={"environment": {"PYTHONPATH": str(REPO / "tests"), "EDGE_AI_DIE_AT": "30"}})
    assert result.returncode == 1
    assert "the server of board 'loop' died (exit status 9) at INFER of sample 27 of 100" in result.stderr, \
        result.stderr[-3000:]
    assert not (tmp_path / "report" / "ssh.json").exists()
    assert_nothing_left(board_dir, sshd)


@pytest.mark.slow
def test_a_hung_inference_is_its_own_error_and_the_server_is_stopped(sshd, board_dir, deployed, onnx_digits, digits,
                                                                     tmp_path):
    started = time.monotonic()
    result = run_client(sshd, board_dir, onnx_digits, digits, tmp_path / "report",
                        runtime="boardfaults.HangingONNXRuntime", protocol={"timeout": 3},
                        board={"environment": {"PYTHONPATH": str(REPO / "tests"), "EDGE_AI_HANG_AT": "8"},
                               "stop_timeout": 2})
    assert result.returncode == 1
    assert "board 'loop' did not answer INFER within 3 s at sample 5:" in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "report" / "ssh.json").exists()
    assert_nothing_left(board_dir, sshd)
    assert time.monotonic() - started < 60


@pytest.mark.slow
def test_two_hosts_on_one_board_take_turns_by_its_lock(sshd, board_dir, deployed, tmp_path):
    first = SSHBoard(**board_settings(sshd, board_dir, log_path=str(tmp_path / "first.log")))
    second = SSHBoard(**board_settings(sshd, board_dir, log_path=str(tmp_path / "second.log"), lock_timeout=2))
    with first:
        first.start(server_spec(tmp_path))
        started = time.monotonic()
        with pytest.raises(BoardError) as error, second:
            second.start(server_spec(tmp_path))
        waited = time.monotonic() - started
        message = str(error.value)
        assert f"board 'loop' is still in use by pid {os.getpid()} on " in message
        assert "after waiting 2 s" in message and 2 <= waited < 20
        # A holder that dies releases the board at once: the second host gets it.
        os.kill(first.pid, signal.SIGKILL)
        with second:
            second.start(server_spec(tmp_path))
            assert second.alive()
    assert_nothing_left(board_dir, sshd)


@pytest.mark.slow
def test_the_server_stops_when_the_host_dies(sshd, board_dir, deployed, tmp_path):
    """The host killed (SIGKILL: no cleanup of its own) leaves nothing running on the board."""
    script = (f"import sys, time; sys.path.insert(0, {str(REPO / 'tests')!r}); "
              "from edge_ai_lib.boards.ssh import SSHBoard; "
              f"b = SSHBoard(**{board_settings(sshd, board_dir)!r}); "
              f"print(b.start({server_spec(tmp_path)!r})[1], b.remote_port, flush=True); time.sleep(600)")
    host = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        local_port, remote_port = map(int, host.stdout.readline().split())
    finally:
        host.kill()
        host.wait(timeout=10)
    assert_nothing_left(board_dir, sshd, {local_port, remote_port})


# -- a full disk on the board: the board, the directory, the space and the fix; nothing left running ------
@pytest.fixture
def board_disk(mount_tmpfs):
    """A small tmpfs as the board's disk (root, as in CI), unmounted afterwards (test_files' fixture)."""
    count = iter(range(100))
    return lambda size: mount_tmpfs(size, name=f"disk-{next(count)}")


def leave_free(disk: Path, free: int) -> None:
    """Fill `disk` with a ballast file until about `free` bytes are left."""
    stat = os.statvfs(disk)
    with open(disk / "ballast", "wb") as ballast:
        ballast.write(b"\0" * max(stat.f_bavail * stat.f_frsize - free, 0))


def assert_disk_full_message(message: str, directory: Path, what: str) -> None:
    assert f"board 'loop': No space left on device in {directory} while {what}" in message, message
    assert f"free space on the board there (df -h {directory}), or set the board's workdir to a directory on a " \
        "disk with room" in message, message


@pytest.mark.slow
def test_a_full_disk_while_uploading_the_packages_says_so(sshd, board_dir, deployed, board_disk):
    disk = board_disk("10m")  # holds our wheel, not the runtime's wheels
    board = SSHBoard(**board_settings(sshd, board_dir, workdir=str(disk / "work")))
    with pytest.raises(BoardError) as error, board:
        board.deploy(server_spec(disk))
    message = str(error.value)
    assert_disk_full_message(message, disk / "work" / "wheelhouse", "uploading numpy-")
    assert re.search(r"\(\d+\.\d MB free of 10\.5 MB, \d+\.\d MB needed\)", message), message
    assert not list(disk.rglob("*.partial"))
    assert_nothing_left(board_dir, sshd, workdir=disk)


@pytest.mark.slow
def test_a_full_disk_while_installing_says_so_and_leaves_no_half_environment(sshd, board_dir, deployed, board_disk):
    disk = board_disk("90m")  # holds the wheelhouse (44 MB), not the environment installed from it
    board = SSHBoard(**board_settings(sshd, board_dir, workdir=str(disk / "work")))
    with pytest.raises(BoardError) as error, board:
        board.deploy(server_spec(disk))
    message = str(error.value)
    assert_disk_full_message(message, disk / "work", "installing edge_ai_lib[onnxruntime]")
    assert "[Errno 28] No space left on device" in message  # pip's own words follow
    assert not (disk / "work" / "venv").exists() and not (disk / "work" / "installed.json").exists()
    assert_nothing_left(board_dir, sshd, workdir=disk)


@pytest.mark.slow
def test_a_full_disk_while_starting_the_server_says_so(sshd, board_dir, deployed, board_disk, tmp_path):
    disk = board_disk("512k")
    (disk / "work" / "logs").mkdir(parents=True)
    leave_free(disk, 0)
    board = SSHBoard(**board_settings(sshd, board_dir, workdir=str(disk / "work"), no_install=True,
                                      python=str(board_dir / "work" / "venv" / "bin" / "python"),
                                      log_path=str(tmp_path / "server.log")))
    with pytest.raises(BoardError) as error, board:
        board.start(server_spec(disk))
    assert_disk_full_message(str(error.value), disk / "work", "starting the server")
    assert_nothing_left(board_dir, sshd, workdir=disk)


@pytest.mark.slow
def test_a_full_disk_while_receiving_the_model_says_so(sshd, board_dir, deployed, board_disk, onnx_digits, digits,
                                                       tmp_path):
    disk = board_disk("1m")
    model_size = onnx_digits[1].stat().st_size
    leave_free(disk, 64 * 1024)  # room for the server's log, not for the model
    assert model_size > 128 * 1024
    result = run_client(sshd, board_dir, onnx_digits, digits, tmp_path / "report",
                        board={"workdir": str(disk / "work"), "no_install": True,
                               "python": str(board_dir / "work" / "venv" / "bin" / "python")},
                        # relative, as the workflow gives it: under the board's work directory
                        runtime_args={"save_model_path": "results/boards/loop/received-model.onnx"})
    assert result.returncode == 1
    assert "no space left on the device holding results/boards/loop" in result.stderr, result.stderr[-3000:]
    assert_disk_full_message(result.stderr, disk / "work", "receiving the model")
    assert not (tmp_path / "report" / "ssh.json").exists()
    assert_nothing_left(board_dir, sshd, workdir=disk)


# -- a board behind a slow link: the latency shows on the host, not on the board -----------------------
LINK_INDEX = 9  # 10.200.9.0/24, a namespace of this test's own
ONE_WAY_DELAY_S = 0.020


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_a_board_behind_a_slow_link_shows_the_latency_on_the_host_only(sshd, board_dir, deployed, onnx_digits,
                                                                         digits, tmp_path):
    """The same model on the loopback board and on a board in a namespace behind a 50 Mbit/s link (tbf) and a
    proxy adding 20 ms each way: per-sample host times grow by the round trip, outputs do not change, and
    board-side times stay those of the loopback board at the same pace. (A model called every 40 ms runs
    slower than one called back to back, caches gone cold: so the loopback board is also run through the
    same proxy, and its board-side range is the reference.) The far board is the same work directory,
    reached through the far sshd."""
    near = run_client(sshd, board_dir, onnx_digits, digits, tmp_path / "near", max_samples=50)
    assert near.returncode == 0, near.stderr[-3000:]
    with LatencyProxy(("127.0.0.1", sshd.port), ONE_WAY_DELAY_S) as proxy:
        paced = run_client(sshd, board_dir, onnx_digits, digits, tmp_path / "paced", max_samples=50,
                           board={"ssh_port": proxy.port})
    assert paced.returncode == 0, paced.stderr[-3000:]
    with contextlib.ExitStack() as cleanup:  # unwound on any failure: proxy, sshd, then the namespace
        namespace = cleanup.enter_context(network_namespace(LINK_INDEX, rate="50mbit"))
        far_sshd = start_sshd(tmp_path / "far-sshd", address=f"10.200.{LINK_INDEX}.2", namespace=namespace)
        cleanup.callback(far_sshd.stop)
        proxy = cleanup.enter_context(LatencyProxy((f"10.200.{LINK_INDEX}.2", far_sshd.port), ONE_WAY_DELAY_S))
        started = time.monotonic()
        far = run_client(far_sshd, board_dir, onnx_digits, digits, tmp_path / "far", max_samples=50,
                         board={"ssh_port": proxy.port, "board_name": "far"})
        far_seconds = time.monotonic() - started
        assert far.returncode == 0, far.stderr[-3000:]
        crossed = bytes_sent(veth_host_side(LINK_INDEX))
        assert_nothing_left(board_dir, far_sshd)
        assert not ours_on_board(f"-p {proxy.port} ")  # the tunnel, too, is gone
    assert namespace not in namespaces()
    assert far_sshd.process.poll() is not None
    assert not [thread for thread in proxy.threads if thread.is_alive()]

    assert crossed > onnx_digits[1].stat().st_size  # the model (and the session) went over the limited link
    runs = ("near", "paced", "far")
    documents = {name: json.loads((tmp_path / name / "ssh.json").read_text()) for name in runs}
    host = {name: np.asarray(d["host_performance"]["samples_s"]) for name, d in documents.items()}
    board = {name: np.asarray(d["performance"]["samples_s"]) for name, d in documents.items()}
    added = np.median(host["far"]) - np.median(host["near"])
    print("\nslow link (host median, board median): " + ", ".join(
        f"{name} {np.median(host[name]) * 1e3:.2f} ms, {np.median(board[name]) * 1e6:.0f} us" for name in runs)
        + f"; far run {far_seconds:.1f} s, {crossed} bytes over the link")
    assert len(host["far"]) == len(board["far"]) == 50
    assert host["far"].min() >= 2 * ONE_WAY_DELAY_S  # every sample waited out the round trip
    assert 2 * ONE_WAY_DELAY_S <= added < 2 * ONE_WAY_DELAY_S + 0.2
    assert board["paced"].min() <= np.median(board["far"]) <= board["paced"].max()
    assert np.median(board["far"]) < ONE_WAY_DELAY_S / 20  # none of the link's latency is on the board
    outputs = {name: np.load(tmp_path / name / "ssh-outputs.npy") for name in runs}
    for name in ("paced", "far"):
        assert outputs[name].shape == outputs["near"].shape and np.array_equal(outputs[name], outputs["near"])
    assert documents["far"]["board"]["name"] == "far"


# -- a board with Python 3.9 (Jetson and older Ubuntu images): the board side runs there for real ----------
def python_3_9() -> str | None:
    """A Python 3.9 of this machine that can make virtual environments (pyenv's, or the system's)."""
    candidates = sorted(Path.home().glob(".pyenv/versions/3.9*/bin/python3.9")) + [
        Path("/usr/bin/python3.9"), Path("/usr/local/bin/python3.9")]
    for candidate in candidates:
        if candidate.is_file() and subprocess.run(
                [str(candidate), "-c", "import sys, venv; sys.exit(sys.version_info[:2] != (3, 9))"],
                capture_output=True, timeout=60).returncode == 0:
            return str(candidate)
    return None


@pytest.mark.slow
def test_a_python_3_9_board_installs_and_serves(sshd, board_dir, deployed, onnx_digits, digits, tmp_path):
    """The board's Python 3.9 gets the releases made for it (onnxruntime 1.19, numpy 2.0) from the wheelhouse;
    its outputs match the 3.11 board's within float tolerance (another ONNX Runtime release). Not in CI's
    image: skipped where no 3.9 exists, in CI too."""
    python = python_3_9()
    if python is None:
        pytest.skip("no Python 3.9 on this machine (pyenv install 3.9, or apt-get install python3.9)")
    near = run_client(sshd, board_dir, onnx_digits, digits, tmp_path / "near", max_samples=50)
    assert near.returncode == 0, near.stderr[-3000:]
    old = run_client(sshd, board_dir, onnx_digits, digits, tmp_path / "py39", max_samples=50, timeout=600,
                     board={"python": python, "board_name": "py39", "workdir": str(tmp_path / "work39")})
    assert old.returncode == 0, old.stderr[-3000:]
    document = json.loads((tmp_path / "py39" / "ssh.json").read_text())
    assert document["board"]["deploy"] == "installed" and document["board"]["board_python"] == "3.9"
    provenance = document["board_provenance"]
    assert provenance["python"].startswith("3.9.")
    assert provenance["packages"]["onnxruntime"].startswith("1.19.")
    assert provenance["packages"]["numpy"].startswith("2.0.")
    outputs = {name: np.load(tmp_path / name / "ssh-outputs.npy") for name in ("near", "py39")}
    assert np.allclose(outputs["py39"], outputs["near"], rtol=1e-4, atol=1e-5)
    assert np.array_equal(outputs["py39"].argmax(axis=-1), outputs["near"].argmax(axis=-1))
    assert_nothing_left(board_dir, sshd, workdir=tmp_path / "work39")


def test_the_wheelhouse_takes_the_releases_made_for_the_boards_python():
    """pip download evaluates markers for the host's Python: the board's are evaluated here instead."""
    from edge_ai_lib.boards.ssh import board_requirements, build_wheel

    wheel = build_wheel()
    assert "onnxruntime<1.32,>=1.19" in board_requirements(wheel, "onnxruntime", "3.9", "aarch64")
    assert "onnxruntime<1.33,>=1.32" in board_requirements(wheel, "onnxruntime", "3.11", "x86_64")
    assert not any(r.startswith("onnxruntime") for r in board_requirements(wheel, "litert", "3.9", "aarch64"))
