"""The benchmark session's two paths, measured side by side in one run: per-sample cost against the floor.

    python bench/session_paths.py [--rounds 3] [--samples 1437]

The digits CNN (PyTorch, exported to ONNX, ONNX Runtime, 1 thread) on the local board over loopback
TCP: the seed's path (DATA, PROCESS, OUTPUT, STATS per batch) and the fast path (one INFER per batch),
interleaved, `--rounds` times each; a raw 24-byte round trip and the client's own encode/decode time
are measured in the same run, so the targets are ratios to figures of this run. Every figure is the
median over rounds with its range; the load average is printed before and after. A missed target is
printed with its gap.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from run_bench import bare_round_trip  # noqa: E402

from edge_ai_lib.boards.local import LocalBoard  # noqa: E402
from edge_ai_lib.compilers.onnxruntime import ONNXRuntimeCompiler  # noqa: E402
from edge_ai_lib.datasets.digits import DigitsDataset  # noqa: E402
from edge_ai_lib.modelwrappers.classification.pytorch_digits import PyTorchDigitsCNN  # noqa: E402
from edge_ai_lib.runtimeprotocols.network import NetworkProtocol  # noqa: E402
from edge_ai_lib.scenarios.inference_client import run_session  # noqa: E402

PROTOCOL = "edge_ai_lib.runtimeprotocols.network.NetworkProtocol"
RUNTIME = "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime"


def session(board_address, wrapper, dataset, model: bytes, fast: bool, samples: int) -> dict:
    client = NetworkProtocol(*board_address, timeout=60)
    client.initialize_client()
    try:
        result = run_session(client, wrapper, dataset, model, split="train", warmup=20, max_samples=samples,
                             progress=False, fast=fast)
    finally:
        client.disconnect()
    host = np.asarray(result.host.samples_s)
    board = np.asarray(result.board.samples_s)
    return {"samples_per_second": result.measured_samples / result.wall_seconds,
            "period_s": result.wall_seconds / result.measured_samples,
            "board_median_s": float(np.median(board)), "overhead_median_s": float(np.median(host - board)),
            "overhead_p99_s": float(np.percentile(host - board, 99)), "overhead_min_s": float(np.min(host - board))}


def client_codec_seconds(wrapper, dataset, samples: int) -> float:
    """Median time of the client's own work per sample: encode the input, decode the output (no network)."""
    from edge_ai_lib.core.wire import encode_tensors

    output = encode_tensors([np.zeros((1, 10), np.float32)])
    times = []
    for inputs, _ in dataset.iter_batches("train", batch_size=1, max_samples=samples):
        start = time.perf_counter()
        wrapper.convert_input_to_bytes(inputs)
        wrapper.postprocess_outputs(wrapper.convert_output_from_bytes(output))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


class _NullTransport:
    """Takes the server's replies and drops them: the board's own work per request, without a socket."""

    spool_directory = None

    def reply(self, message_type, payload=b"") -> bool:
        return True


def board_breakdown(model_path: Path, wrapper, dataset, directory: Path, samples: int = 2000) -> dict[str, float]:
    """Median seconds of each step the board takes per INFER, timed in this process with the same
    runtime and model (decode the tensor list, hand the inputs over, the runtime call, encode the
    outputs, and the whole request handler with a reply that goes nowhere)."""
    from edge_ai_lib.core.serving import InferenceServer
    from edge_ai_lib.core.wire import MessageType, decode_tensors
    from edge_ai_lib.runtimes.onnxruntime import ONNXRuntime

    runtime = ONNXRuntime(directory / "breakdown.onnx", num_threads=1, resource_interval=0)
    server = InferenceServer(runtime, _NullTransport(), resource_interval=0)
    server.load(model_path.read_bytes())
    inputs, _ = next(iter(dataset.iter_batches("train", batch_size=1, max_samples=1)))
    payload = bytearray(wrapper.convert_input_to_bytes(inputs))
    steps = {"decode inputs": lambda: decode_tensors(payload),
             "set_inputs": lambda: runtime.set_inputs(decode_tensors(payload)),
             "runtime call": runtime.run,
             "encode outputs": server.outputs,
             "whole INFER handler": lambda: server.handle_message(MessageType.INFER, payload)}
    server.take_inputs(payload)
    server.infer()  # outputs exist from here on
    figures = {}
    for name, step in steps.items():
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        figures[name] = float(np.median(times[samples // 10:]))
        server.pending_inference_s.clear()
    figures["set_inputs"] -= figures["decode inputs"]
    return figures


def spread(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    values = [v * scale for v in values]
    return f"{np.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1437)
    parser.add_argument("--output", type=Path, default=Path("results/bench"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    rounds: dict[str, list[dict]] = {"seed": [], "fast": []}
    rtts, codecs, breakdowns = [], [], []
    with tempfile.TemporaryDirectory(prefix="edge-ai-paths-") as tmp:
        directory = Path(tmp)
        dataset = DigitsDataset(directory / "digits")
        wrapper = PyTorchDigitsCNN(directory / "digits.pt", dataset, from_file=False)
        wrapper.save_model(wrapper.model_path)
        compiler = ONNXRuntimeCompiler(dataset, directory / "digits.onnx")
        compiler.compile_model(wrapper)
        model = compiler.compiled_model_path.read_bytes()
        with LocalBoard(log_path=directory / "server.log") as board:
            address = board.start({"protocol": {"class": PROTOCOL},
                                   "runtime": {"class": RUNTIME, "args": {"save_model_path": str(directory / "b.onnx"),
                                                                          "num_threads": 1,
                                                                          "resource_interval": 0}}})
            for _ in range(args.rounds):
                for path in ("seed", "fast"):
                    rounds[path].append(session(address, wrapper, dataset, model, path == "fast", args.samples))
                rtts.append(float(np.median(bare_round_trip(2000))))
                codecs.append(client_codec_seconds(wrapper, dataset, 500))
                breakdowns.append(board_breakdown(compiler.compiled_model_path, wrapper, dataset, directory))
    load_after = os.getloadavg()

    def figure(path: str, key: str) -> list[float]:
        return [entry[key] for entry in rounds[path]]

    us = 1e6
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after "
          f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} (2 CPUs); {args.rounds} rounds of "
          f"{args.samples} samples per path, interleaved; median (range)")
    print(f"{'path':6} {'samples/s':>22} {'period us':>20} {'board us':>18} {'overhead med us':>20} "
          f"{'overhead p99 us':>20} {'overhead min us':>18}")
    for path in ("seed", "fast"):
        print(f"{path:6} {spread(figure(path, 'samples_per_second'), digits=0):>22} "
              f"{spread(figure(path, 'period_s'), us):>20} {spread(figure(path, 'board_median_s'), us):>18} "
              f"{spread(figure(path, 'overhead_median_s'), us):>20} {spread(figure(path, 'overhead_p99_s'), us):>20} "
              f"{spread(figure(path, 'overhead_min_s'), us):>18}")
    print(f"raw 24-byte round trip: {spread(rtts, us)} us; client encode+decode per sample: {spread(codecs, us)} us")

    print("\nwhere a fast-path sample goes: the board's steps timed in-process (same model and runtime), median "
          "(range) over rounds, us")
    for step in breakdowns[0]:
        print(f"  {step:22} {spread([b[step] for b in breakdowns], us):>20}")
    print(f"  {'client codec':22} {spread(codecs, us):>20}")
    print(f"  {'raw round trip':22} {spread(rtts, us):>20}")

    rtt, codec = float(np.median(rtts)), float(np.median(codecs))
    fast_period = float(np.median(figure("fast", "period_s")))
    floor = float(np.median(figure("fast", "board_median_s"))) + codec + 2 * rtt
    speedup = float(np.median(figure("fast", "samples_per_second"))) / float(np.median(figure("seed", "samples_per_second")))
    overhead_median = float(np.median(figure("fast", "overhead_median_s")))
    overhead_p99 = float(np.median(figure("fast", "overhead_p99_s")))
    never_negative = min(figure("fast", "overhead_min_s") + figure("seed", "overhead_min_s")) >= 0
    targets = [
        ("fast period <= board + client codec + 2 round trips", fast_period * us, floor * us, fast_period <= floor,
         "us"),
        ("fast samples/s >= 2x the seed's path", speedup, 2.0, speedup >= 2.0, "x"),
        ("overhead median <= 3 round trips", overhead_median * us, 3 * rtt * us, overhead_median <= 3 * rtt, "us"),
        ("overhead p99 <= 10 round trips", overhead_p99 * us, 10 * rtt * us, overhead_p99 <= 10 * rtt, "us"),
        ("overhead never negative (every sample, both paths)", min(figure("fast", "overhead_min_s")
                                                                  + figure("seed", "overhead_min_s")) * us, 0.0,
         never_negative, "us"),
    ]
    print("\ntargets (measured / target):")
    for name, measured, target, met, unit in targets:
        gap = "" if met else f"  (gap {measured - target:+.1f} {unit})"
        print(f"  {'met   ' if met else 'MISSED'} {name}: {measured:.1f} / {target:.1f} {unit}{gap}")
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "session_paths.json").write_text(json.dumps(
        {"rounds": rounds, "round_trip_s": rtts, "client_codec_s": codecs, "board_breakdown_s": breakdowns,
         "load_before": load_before,
         "load_after": load_after}, indent=1))
    print(f"wrote {args.output / 'session_paths.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
