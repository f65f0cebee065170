"""`make bench` for SSH boards: what the SSH tunnel costs, beside the local board, all in one run.

    python bench/ssh_tunnel.py [--rounds 3] [--calls 400] [--echoes 2000] [--size-mb 64]

The SSH board is this machine reached through OpenSSH's sshd on 127.0.0.1 (tests/sshd.py: its own
host key and client key), deployed into a temporary work directory from a wheelhouse, its server
forwarded by the board's own `ssh -L`. The same ssh process also forwards, to helpers started on the
board side through the board's SSH connection (bench/peers.py, on the board's 127.0.0.1):
- an echo: the raw round trip of 24 bytes through the tunnel;
- a sink: a bare stream of --size-mb bytes through the tunnel (`sendall`, one byte back);
- a protocol sink: the client's `ClientSession.upload_model` of the same bytes (streamed, CRC trailer),
  received as the board's server receives a model (spooled to a file), through the tunnel.
The local board gets the same figures with the same helpers on loopback, without the tunnel. The
per-sample protocol overhead (host time of INFER minus the board's time of the runtime call) and the
whole-session samples/s come from real sessions with the inference server of each board (a small
ONNX model, ONNX Runtime, 1 thread). Deploy time: a first deploy into an empty work directory (the
host's wheel and wheelhouse caches warm) and a repeated one (nothing to install).

Every figure is measured --rounds times, interleaved (each round measures every figure once), and
printed as the median of the rounds with their range; the load average is printed before and after.
Targets: overhead median <= 3 round trips of the same tunnel; upload >= 50% of a bare stream through it.
Needs root (sshd) and OpenSSH; talks to 127.0.0.1 only. Writes results/bench/ssh_tunnel.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

from edge_ai_lib.boards.local import LocalBoard  # noqa: E402
from edge_ai_lib.boards.ssh import SSHBoard  # noqa: E402
from edge_ai_lib.core.runtimeprotocol import ClientSession  # noqa: E402
from edge_ai_lib.core.wire import encode_tensors  # noqa: E402
from edge_ai_lib.runtimeprotocols.network import NetworkProtocol  # noqa: E402

PROTOCOL = "edge_ai_lib.runtimeprotocols.network.NetworkProtocol"
ORT = "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime"
PEERS = REPO / "bench" / "peers.py"
UPLOADS_PER_ROUND = 5
WARMUP = 50
BOARD_PYTHON = "/usr/bin/python3.11" if Path("/usr/bin/python3.11").is_file() else sys.executable


def missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "sshd needs root to log users in: run as root (as CI does)"
    for tool in ("/usr/sbin/sshd", shutil.which("ssh"), shutil.which("ssh-keygen")):
        if not tool or not Path(tool).exists():
            return "OpenSSH (openssh-server, openssh-client) is not installed: apt-get install openssh-server"
    return None


def tiny_onnx_model(path: Path) -> bytes:
    """A 64-in, 10-out dense layer: the per-sample cost is the protocol's, not the model's."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).random((64, 10), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path.read_bytes()


class TunnelledBoard(SSHBoard):
    """The SSH board whose `ssh -L` also forwards the bench's helpers (`extra_forwards`: local, remote port)."""

    def __init__(self, **settings):
        super().__init__(**settings)
        self.extra_forwards: list[tuple[int, int]] = []

    def ssh_command(self) -> list[str]:
        command = super().ssh_command()
        for local_port, remote_port in self.extra_forwards:
            command[-1:-1] = ["-L", f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}"]
        return command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_on_board(board: SSHBoard, *arguments: object) -> tuple[object, int, int]:
    """A bench/peers.py helper started on the board side through the board's SSH connection;
    returns (its channel, its pid, the port it listens on on the board's loopback)."""
    words = " ".join(str(a) for a in arguments)
    channel = board.connection.client.get_transport().open_session(timeout=10)
    channel.exec_command(f"echo $$; exec {sys.executable} {PEERS} {words}")
    channel.settimeout(30)
    received = b""
    while received.count(b"\n") < 2:
        chunk = channel.recv(256)
        if not chunk:
            raise RuntimeError(f"helper {words} did not start on the board: {received!r}")
        received += chunk
    pid_line, port_line = received.decode().splitlines()[:2]
    return channel, int(pid_line), int(port_line.split()[1])


def start_locally(*arguments: object) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, str(PEERS), *map(str, arguments)], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.startswith("port "):
        process.kill()
        raise RuntimeError(f"helper {arguments} did not start: {line!r}")
    return process, int(line.split()[1])


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def round_trips(sock: socket.socket, count: int) -> list[float]:
    message, times = b"x" * 24, []
    for _ in range(count):
        start = time.perf_counter()
        sock.sendall(message)
        data = b""
        while len(data) < 24:
            chunk = sock.recv(24 - len(data))
            if not chunk:
                raise RuntimeError("the echo closed the connection")
            data += chunk
        times.append(time.perf_counter() - start)
    return times


def bare_stream(sock: socket.socket, payload: bytes, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        sock.sendall(payload)
        if sock.recv(1) != b"k":
            raise RuntimeError("the sink did not acknowledge the stream")
        times.append(time.perf_counter() - start)
    return times


def protocol_client(port: int, max_payload: int) -> tuple[NetworkProtocol, ClientSession]:
    client = NetworkProtocol("127.0.0.1", port, timeout=120, max_payload=max_payload)
    client.initialize_client()
    return client, ClientSession(client)


def streamed_uploads(session: ClientSession, model: bytes, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        session.upload_model(model)
        times.append(time.perf_counter() - start)
    return times


def inference_session(session: ClientSession, payload: bytes, calls: int) -> dict:
    """INFER `calls` times after a warm-up: per-sample overhead (host minus board) and samples/s."""
    for _ in range(WARMUP):
        session.infer(payload)
    overhead = []
    start = time.perf_counter()
    for _ in range(calls):
        host_seconds, board_seconds, _ = session.infer(payload)
        overhead.append(host_seconds - board_seconds)
    wall = time.perf_counter() - start
    return {"overhead_median_s": float(np.median(overhead)), "overhead_p99_s": float(np.percentile(overhead, 99)),
            "samples_per_second": calls / wall}


def server_spec(workdir: Path) -> dict:
    return {"protocol": {"class": PROTOCOL, "args": {"timeout": 120}},
            "runtime": {"class": ORT, "args": {"save_model_path": str(workdir / "received.onnx"), "num_threads": 1}}}


def deploy_times(settings: dict, scratch: Path, rounds: int) -> tuple[list[float], list[float], Path]:
    """Seconds of first deploys (each into an empty work directory) and of repeated ones (up to date)."""
    first, repeated, workdir = [], [], scratch
    for index in range(rounds):
        workdir = scratch / f"work-{index}"
        with SSHBoard(**{**settings, "workdir": str(workdir)}) as board:
            started = time.monotonic()
            board.deploy(server_spec(workdir))
            first.append(time.monotonic() - started)
            assert board.deployed == "installed", board.deployed
    for _ in range(rounds):
        with SSHBoard(**{**settings, "workdir": str(workdir)}) as board:
            started = time.monotonic()
            board.deploy(server_spec(workdir))
            repeated.append(time.monotonic() - started)
            assert board.deployed == "up to date", board.deployed
    return first, repeated, workdir


def spread(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    scaled = [v * scale for v in values]
    return f"{np.median(scaled):.{digits}f} ({min(scaled):.{digits}f}-{max(scaled):.{digits}f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=400, help="Measured INFER requests per round and board")
    parser.add_argument("--echoes", type=int, default=2000, help="24-byte round trips per round and path")
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--output", type=Path, default=Path("results/bench"))
    args = parser.parse_args()
    problem = missing_prerequisite()
    if problem:
        print(f"bench/ssh_tunnel.py: not run: {problem}", file=sys.stderr)
        return 2
    from sshd import start_sshd

    args.output.mkdir(parents=True, exist_ok=True)
    size = args.size_mb * 1024 * 1024
    blob = np.random.default_rng(1).bytes(size)
    payload = encode_tensors([np.random.default_rng(2).random((1, 64), dtype=np.float32)])
    load_before = os.getloadavg()
    figures: dict[str, dict[str, list[float]]] = {"local": {}, "ssh": {}}

    def record(board: str, name: str, value: float) -> None:
        figures[board].setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory(prefix="edge-ai-bench-ssh-") as scratch_name, contextlib.ExitStack() as cleanup:
        scratch = Path(scratch_name)
        model = tiny_onnx_model(scratch / "tiny.onnx")
        sshd = start_sshd(scratch / "sshd")
        cleanup.callback(sshd.stop)
        settings = {**sshd.board_args(), "board_name": "sshd-loopback", "packages": "wheelhouse",
                    "python": BOARD_PYTHON, "runtime_extra": "onnxruntime", "lock_timeout": 30,
                    "log_path": str(scratch / "ssh-server.log")}
        print(f"deploying to the sshd board {args.rounds} times into empty work directories, then "
              f"{args.rounds} times again...", flush=True)
        first, repeated, workdir = deploy_times(settings, scratch, args.rounds)
        figures["ssh"]["deploy_first_s"], figures["ssh"]["deploy_repeated_s"] = first, repeated

        # The board side: the server, and the helpers, all forwarded by the board's one ssh -L process.
        board = cleanup.enter_context(TunnelledBoard(**{**settings, "workdir": str(workdir)}))
        board.deploy(server_spec(workdir))
        helpers = {"echo": ("echo", args.rounds * args.echoes),
                   "sink": ("sink", size, args.rounds * UPLOADS_PER_ROUND),
                   "protocol": ("protocol-sink", size, 32768, 1)}
        remote_ports = {}
        for name, arguments in helpers.items():
            channel, pid, port = start_on_board(board, *arguments)
            remote_ports[name] = port
            cleanup.callback(lambda channel=channel, pid=pid: (
                board.connection and board.connection.run(f"kill {pid} 2>/dev/null", timeout=30), channel.close()))
        local_ports = {name: free_port() for name in helpers}
        board.extra_forwards = [(local_ports[name], remote_ports[name]) for name in helpers]
        host, server_port = board.start(server_spec(workdir))
        local_board = cleanup.enter_context(LocalBoard(log_path=scratch / "local-server.log"))
        (scratch / "local").mkdir()
        local_server = local_board.start(server_spec(scratch / "local"))
        local_helpers = {}
        for name, arguments in helpers.items():
            process, port = start_locally(*arguments)
            cleanup.callback(lambda process=process: (process.kill(), process.wait(timeout=30)))
            local_helpers[name] = port

        paths = {"ssh": {"server": (host, server_port), **{n: ("127.0.0.1", p) for n, p in local_ports.items()}},
                 "local": {"server": local_server, **{n: ("127.0.0.1", p) for n, p in local_helpers.items()}}}
        connections = {}
        for kind, where in paths.items():
            echo = cleanup.enter_context(connect(where["echo"][1]))
            sink = cleanup.enter_context(connect(where["sink"][1]))
            uploader, upload_session = protocol_client(where["protocol"][1], size + 1)
            cleanup.callback(uploader.disconnect)
            server, server_session = protocol_client(where["server"][1], 1 << 20)
            cleanup.callback(server.disconnect)
            server_session.upload_model(model)
            connections[kind] = (echo, sink, upload_session, server_session)

        for round_index in range(args.rounds):
            print(f"round {round_index + 1} of {args.rounds}...", flush=True)
            for kind, (echo, sink, upload_session, server_session) in connections.items():
                trips = round_trips(echo, args.echoes)
                record(kind, "round_trip_median_s", float(np.median(trips)))
                record(kind, "round_trip_p99_s", float(np.percentile(trips, 99)))
                session = inference_session(server_session, payload, args.calls)
                for name, value in session.items():
                    record(kind, name, value)
                bare = bare_stream(sink, blob, UPLOADS_PER_ROUND)
                streamed = streamed_uploads(upload_session, blob, UPLOADS_PER_ROUND)
                record(kind, "bare_stream_mb_per_s", size / float(np.median(bare)) / 1e6)
                record(kind, "upload_model_mb_per_s", size / float(np.median(streamed)) / 1e6)
        forwarding = board.forwarding
    load_after = os.getloadavg()

    for kind in figures:
        if "upload_model_mb_per_s" in figures[kind]:
            figures[kind]["upload_of_bare"] = [u / b for u, b in zip(figures[kind]["upload_model_mb_per_s"],
                                                                    figures[kind]["bare_stream_mb_per_s"])]
    print(f"\nSSH board (sshd on 127.0.0.1, forwarding: {forwarding}) beside the local board, {args.rounds} rounds, "
          f"median (range) of the rounds; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
          f"({os.cpu_count()}-core machine)")
    rows = [("24 B round trip, median (us)", "round_trip_median_s", 1e6, 1),
            ("24 B round trip, p99 (us)", "round_trip_p99_s", 1e6, 1),
            ("protocol overhead per sample, median (us)", "overhead_median_s", 1e6, 1),
            ("protocol overhead per sample, p99 (us)", "overhead_p99_s", 1e6, 1),
            ("whole session (samples/s)", "samples_per_second", 1, 0),
            (f"upload_model {args.size_mb} MiB (MB/s)", "upload_model_mb_per_s", 1, 0),
            (f"bare stream {args.size_mb} MiB (MB/s)", "bare_stream_mb_per_s", 1, 0),
            ("upload_model / bare stream (%)", "upload_of_bare", 100, 0),
            ("deploy, first (s)", "deploy_first_s", 1, 2),
            ("deploy, repeated: nothing to install (s)", "deploy_repeated_s", 1, 2)]
    print(f"{'figure':44} {'local board':>24} {'sshd board, tunnelled':>24}")
    for label, key, scale, digits in rows:
        cells = [spread(figures[kind][key], scale, digits) if key in figures[kind] else "-"
                 for kind in ("local", "ssh")]
        print(f"{label:44} {cells[0]:>24} {cells[1]:>24}")

    ssh = {key: float(np.median(values)) for key, values in figures["ssh"].items()}
    limit = 3 * ssh["round_trip_median_s"]
    print("\ntargets (medians of this run):")
    overhead = ssh["overhead_median_s"]
    print(f"  overhead median <= 3 tunnel round trips: {overhead * 1e6:.1f} us against 3 x "
          f"{ssh['round_trip_median_s'] * 1e6:.1f} = {limit * 1e6:.1f} us -> "
          + ("met" if overhead <= limit else f"MISSED by {(overhead - limit) * 1e6:.1f} us")
          + f" ({overhead / ssh['round_trip_median_s']:.2f} round trips)")
    ratio = ssh["upload_of_bare"]
    print(f"  upload_model >= 50% of a bare stream through the tunnel: {ratio * 100:.0f}% -> "
          + ("met" if ratio >= 0.5 else f"MISSED by {(0.5 - ratio) * 100:.0f} points"))
    (args.output / "ssh_tunnel.json").write_text(json.dumps(
        {"rounds": args.rounds, "calls": args.calls, "echoes": args.echoes, "size_bytes": size,
         "forwarding": forwarding, "load_average": {"before": load_before, "after": load_after},
         "figures": figures}, indent=1))
    print(f"wrote {args.output}/ssh_tunnel.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
