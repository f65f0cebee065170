"""`make bench`: how faithful and how costly the board protocol is, all measured in one run.

(a) timing fidelity: board-side median inference time over the median of the same runtime and model
    timed in-process at the same pace with the same per-call input decode and copy (and, beside it,
    the in-process tight-loop median);
(b) protocol overhead: host-side PROCESS window minus board-side time, median and p99, beside the
    round trip of a bare socket;
(c) whole-session throughput: samples per second of the full per-sample exchange against in-process.
The model upload is bench/upload.py's; the session's two paths are bench/session_paths.py's.

Writes results/bench/*.json and prints a table. Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edge_ai_lib.boards.local import LocalBoard  # noqa: E402
from edge_ai_lib.core.provenance import collect_provenance  # noqa: E402
from edge_ai_lib.core.runtimeprotocol import ClientSession  # noqa: E402
from edge_ai_lib.core.wire import MessageType, decode_tensors, encode_tensors  # noqa: E402
from edge_ai_lib.runtimeprotocols.network import NetworkProtocol  # noqa: E402

RESOURCE_INTERVAL = float(os.environ.get("BENCH_RESOURCE_INTERVAL", "0.1"))
PROTOCOL = "edge_ai_lib.runtimeprotocols.network.NetworkProtocol"
RUNTIMES = {"tflite": "edge_ai_lib.runtimes.tflite.TFLiteRuntime",
            "onnxruntime": "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime"}


def _runtime_class(name: str):
    from edge_ai_lib.core.args import load_class

    return load_class(RUNTIMES[name])


# -- models ---------------------------------------------------------------------------------------
def build_models(directory: Path) -> dict[str, dict]:
    """MobileNetV2 (alpha 0.35, 96 px, untrained: timing does not depend on the weights) and the digits CNNs,
    each compiled for TFLite float32 and ONNX Runtime."""
    import keras
    import torch

    from edge_ai_lib.compilers.onnxruntime import ONNXRuntimeCompiler
    from edge_ai_lib.compilers.tflite import TFLiteCompiler
    from edge_ai_lib.datasets.digits import DigitsDataset
    from edge_ai_lib.modelwrappers.classification.pytorch_digits import PyTorchDigitsCNN
    from edge_ai_lib.modelwrappers.classification.tensorflow_digits import TensorFlowDigitsCNN

    models = {}
    keras.utils.set_random_seed(0)
    backbone = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    inputs = keras.Input((96, 96, 3))
    outputs = keras.layers.Dense(37, activation="softmax")(keras.layers.GlobalAveragePooling2D()(backbone(inputs)))
    mobilenet = keras.Model(inputs, outputs)
    keras_path = directory / "mobilenet.keras"
    mobilenet.save(keras_path)
    onnx_path = directory / "mobilenet.onnx"
    mobilenet.export(str(onnx_path), format="onnx", verbose=False,
                     input_signature=[keras.InputSpec(shape=(None, 96, 96, 3), dtype="float32")])
    models["mobilenetv2-0.35-96"] = {
        "input": np.random.default_rng(0).random((1, 96, 96, 3), dtype=np.float32),
        "tflite": TFLiteCompiler(None, directory / "mobilenet.tflite", model_framework="keras").compile(keras_path),
        "onnxruntime": ONNXRuntimeCompiler(None, directory / "mobilenet-ort.onnx").compile(onnx_path),
    }
    digits = DigitsDataset(directory / "digits")
    torch.manual_seed(0)
    for name, cls, suffix in (("digits-keras", TensorFlowDigitsCNN, "keras"),
                              ("digits-pytorch", PyTorchDigitsCNN, "pt")):
        wrapper = cls(directory / f"{name}.{suffix}", digits, from_file=False)
        wrapper.save_model(wrapper.model_path)
        tflite = TFLiteCompiler(digits, directory / f"{name}.tflite",
                                model_framework="keras" if suffix == "keras" else "onnx")
        ort = ONNXRuntimeCompiler(digits, directory / f"{name}-ort.onnx")
        models[name] = {
            "input": wrapper.preprocess_input(digits.get_split_arrays("validation")[0][:1]).astype(np.float32),
            "tflite": tflite.compile(tflite.source_model(wrapper), wrapper),
            "onnxruntime": ort.compile(ort.source_model(wrapper), wrapper),
        }
    return models


# -- (a), (b), (c): a session on the local board against the same runtime in-process ---------------
def board_session(model_path: Path, runtime: str, payload: bytes, calls: int, warmup: int, threads: int,
                  workdir: Path) -> dict:
    with LocalBoard(log_path=workdir / f"server-{runtime}.log") as board:
        host, port = board.start({
            "protocol": {"class": PROTOCOL, "args": {"timeout": 60}},
            "runtime": {"class": RUNTIMES[runtime], "args": {
                "save_model_path": str(workdir / f"board-model-{runtime}{model_path.suffix}"), "num_threads": threads,
                "resource_interval": RESOURCE_INTERVAL}}})
        client = NetworkProtocol(host, port, timeout=60)
        client.initialize_client()
        session = ClientSession(client)
        try:
            session.upload_model(model_path.read_bytes())
            host_s, board_s, starts = [], [], []
            session_start = None
            for index in range(warmup + calls):
                if index == warmup:
                    session_start = time.perf_counter()
                starts.append(time.perf_counter())
                session.upload_input(payload)
                host_time = session.request_processing()
                session.download_output()
                stats = session.download_statistics()
                if index >= warmup:
                    host_s.append(host_time)
                    board_s.append(stats["inference_s"][0])
            session_wall = time.perf_counter() - session_start
        finally:
            client.disconnect()
    periods = np.diff(starts[warmup:])
    return {"host_s": host_s, "board_s": board_s, "period_s": float(np.median(periods)),
            "session_samples_per_second": calls / session_wall}


def in_process(model_path: Path, runtime: str, payload: bytes, calls: int, warmup: int, threads: int,
               period_s: float | None, call_s: float = 0.0) -> list[float]:
    """The runtime without the protocol: per call the same decode and copy of the input as the server's DATA,
    then the timed runtime call and the same encoding of the outputs as its OUTPUT; paced to `period_s` per
    call when given, else back to back."""
    instance = _runtime_class(runtime)(model_path, num_threads=threads)
    instance.load_model(model_path)
    times = []
    for index in range(warmup + calls):
        start = time.perf_counter()
        instance.set_inputs(decode_tensors(payload))
        if period_s:
            # On the board the input is taken (DATA), then the process waits idle for PROCESS, then runs the
            # model: wait here too, between the input copy and the call, so each call starts one period apart.
            while time.perf_counter() - start < period_s - call_s:
                time.sleep(0)
        elapsed = instance.run()
        encode_tensors([np.asarray(t, dtype=np.float32) for t in instance.get_outputs()])
        if index >= warmup:
            times.append(elapsed)
    return times


def _peer(*arguments: object) -> tuple[subprocess.Popen, int]:
    """Start a peer process of bench/peers.py; returns it and the port it listens on."""
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("peers.py")), *map(str, arguments)],
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.startswith("port "):
        process.kill()
        raise RuntimeError(f"bench peer {arguments} did not start: {line!r}")
    return process, int(line.split()[1])


def bare_round_trip(rounds: int) -> list[float]:
    """Round trips of a 24-byte message to an echo process over loopback TCP (as client and board are)."""
    process, port = _peer("echo", rounds)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    message = b"x" * 24
    with sock:
        for _ in range(rounds):
            start = time.perf_counter()
            sock.sendall(message)
            data = b""
            while len(data) < 24:
                data += sock.recv(24 - len(data))
            times.append(time.perf_counter() - start)
    process.wait(timeout=30)
    return times


def bare_upload(size: int, repeats: int) -> list[float]:
    """Seconds to push `size` bytes into another process's preallocated buffer and get 1 byte back."""
    process, port = _peer("sink", size, repeats)
    sock = socket.create_connection(("127.0.0.1", port))
    payload = np.random.default_rng(0).bytes(size)
    times = []
    with sock:
        for _ in range(repeats):
            start = time.perf_counter()
            sock.sendall(payload)
            sock.recv(1)
            times.append(time.perf_counter() - start)
    process.wait(timeout=30)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("results/bench"))
    parser.add_argument("--calls", type=int, default=400, help="Measured inferences per session")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="Runtime threads, the same on both sides")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    provenance = collect_provenance(vars(args))
    ms = 1e3
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-ai-bench-") as tmp:
        workdir = Path(tmp)
        print("building and compiling the models...", flush=True)
        models = build_models(workdir)
        fidelity = {}
        for model_name, model in models.items():
            payload = encode_tensors([model["input"]])
            for runtime in RUNTIMES:
                path = model[runtime]
                print(f"measuring {model_name} on {runtime}...", flush=True)
                session = board_session(path, runtime, payload, args.calls, args.warmup, args.threads, workdir)
                paced = in_process(path, runtime, payload, args.calls, args.warmup, args.threads,
                                   session["period_s"], float(np.median(session["board_s"])))
                tight = in_process(path, runtime, payload, args.calls, args.warmup, args.threads, None)
                board_median = float(np.median(session["board_s"]))
                overhead = np.asarray(session["host_s"]) - np.asarray(session["board_s"])
                entry = {
                    "board_median_s": board_median, "board_p99_s": float(np.percentile(session["board_s"], 99)),
                    "host_median_s": float(np.median(session["host_s"])),
                    "in_process_paced_median_s": float(np.median(paced)),
                    "in_process_tight_median_s": float(np.median(tight)),
                    "fidelity_ratio_paced": board_median / float(np.median(paced)),
                    "fidelity_ratio_tight": board_median / float(np.median(tight)),
                    "overhead_median_s": float(np.median(overhead)),
                    "overhead_p99_s": float(np.percentile(overhead, 99)),
                    "session_samples_per_second": session["session_samples_per_second"],
                    "in_process_samples_per_second": 1.0 / float(np.mean(tight)),
                    "pace_period_s": session["period_s"],
                    "raw": {"board_s": session["board_s"], "host_s": session["host_s"], "paced_s": paced,
                            "tight_s": tight},
                }
                fidelity[f"{model_name}/{runtime}"] = entry
        rtt = bare_round_trip(4000)

    (args.output / "fidelity.json").write_text(json.dumps({"provenance": provenance, "threads": args.threads,
                                                           "calls": args.calls, "runs": fidelity}, indent=1))
    (args.output / "round_trip.json").write_text(json.dumps({"bare_socket_rtt_s": rtt,
                                                             "median_s": float(np.median(rtt)),
                                                             "p99_s": float(np.percentile(rtt, 99))}, indent=1))
    print()
    print(f"{'model / runtime':34} {'board ms':>9} {'paced ms':>9} {'tight ms':>9} {'ratio':>7} {'tight r':>7} "
          f"{'ovh med us':>10} {'ovh p99 us':>10} {'session/s':>10} {'inproc/s':>10}")
    for name, entry in fidelity.items():
        print(f"{name:34} {entry['board_median_s'] * ms:9.3f} {entry['in_process_paced_median_s'] * ms:9.3f} "
              f"{entry['in_process_tight_median_s'] * ms:9.3f} {entry['fidelity_ratio_paced']:7.3f} "
              f"{entry['fidelity_ratio_tight']:7.3f} {entry['overhead_median_s'] * 1e6:10.1f} "
              f"{entry['overhead_p99_s'] * 1e6:10.1f} {entry['session_samples_per_second']:10.0f} "
              f"{entry['in_process_samples_per_second']:10.0f}")
        rows.append(entry)
    print(f"\nbare socket round trip (24 B): median {np.median(rtt) * 1e6:.1f} us, p99 "
          f"{np.percentile(rtt, 99) * 1e6:.1f} us")
    print(f"\ntarget: timing fidelity (board-side median / in-process at the same pace) within +-3% on "
          f"MobileNetV2 0.35/96 for both runtimes; load average now {os.getloadavg()[0]:.2f}")
    for name, entry in fidelity.items():
        if name.startswith("mobilenet"):
            gap = abs(entry["fidelity_ratio_paced"] - 1) * 100
            print(f"  {name}: {entry['fidelity_ratio_paced']:.3f} -> "
                  f"{'met' if gap <= 3 else f'MISSED by {gap - 3:.1f} points'}")
    print(f"wrote {args.output}/fidelity.json, round_trip.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
