"""Model upload against the bare socket, measured side by side in one run; the receiver's peak memory.

    python bench/upload.py [--rounds 3] [--size-mb 64]

Three ways of moving the same `--size-mb` bytes to another process over loopback TCP, interleaved,
`--rounds` times each (every round is the median of 5 uploads):
- bare: `sendall` into a preallocated buffer of the peer, which answers one byte (the floor);
- streamed: the client's `upload_model` as a benchmark does it (the board says it takes the CRC
  trailer, so the CRC is computed piece by piece as the bytes go), received the way the board's
  server receives a model: written to a private file as it arrives, checked, handed over;
- header CRC: the same frame as a board that knows only the seed's document gets it (the CRC
  computed over the whole model before the first byte), received into memory.
The peer reports how much its peak RSS rose (getrusage), which is set against the model's size.
Prints medians with ranges, the load average before and after, and each target met or missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_bench import _peer, bare_upload  # noqa: E402

from edge_ai_lib.core.runtimeprotocol import ClientSession  # noqa: E402
from edge_ai_lib.core.wire import MessageType  # noqa: E402
from edge_ai_lib.runtimeprotocols.network import NetworkProtocol  # noqa: E402

REPEATS = 5


def protocol_upload(model: bytes, streamed: bool) -> tuple[list[float], int]:
    """Seconds per upload (REPEATS of them) and the peer's peak RSS rise in bytes."""
    size = len(model)
    process, port = _peer("protocol-sink", size, 32768, int(streamed))
    client = NetworkProtocol("127.0.0.1", port, timeout=60, max_payload=size + 1)
    client.initialize_client()
    session = ClientSession(client)
    times = []
    try:
        for _ in range(REPEATS):
            start = time.perf_counter()
            if streamed:
                session.upload_model(model)  # asks the board's frame flags once (STATS), then streams
            else:
                session.request(MessageType.MODEL, model)
            times.append(time.perf_counter() - start)
    finally:
        client.disconnect()
    rise = 0
    for line in process.stdout:
        if line.startswith("rss_peak_delta "):
            rise = int(line.split()[1])
    process.wait(timeout=30)
    return times, rise


def spread(values: list[float], digits: int = 2) -> str:
    return f"{np.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--output", type=Path, default=Path("results/bench"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    size = args.size_mb * 1024 * 1024
    model = np.random.default_rng(0).bytes(size)
    load_before = os.getloadavg()
    rates: dict[str, list[float]] = {"bare": [], "streamed": [], "header_crc": []}
    rises: dict[str, list[int]] = {"streamed": [], "header_crc": []}
    for round_index in range(args.rounds):
        print(f"round {round_index + 1} of {args.rounds}...", flush=True)
        rates["bare"].append(size / float(np.median(bare_upload(size, REPEATS))) / 1e9)
        for mode in ("streamed", "header_crc"):
            times, rise = protocol_upload(model, streamed=mode == "streamed")
            rates[mode].append(size / float(np.median(times)) / 1e9)
            rises[mode].append(rise)
    load_after = os.getloadavg()

    print(f"\n{args.size_mb} MiB upload over loopback TCP, {args.rounds} rounds (each the median of {REPEATS}); "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (2-core machine: >2 is loaded)")
    print(f"{'path':44} {'GB/s median (range)':>22} {'of bare':>8} {'peer peak RSS rise':>20}")
    bare = float(np.median(rates["bare"]))
    labels = {"bare": "bare socket (sendall into a buffer)", "streamed": "streamed, CRC trailer, spooled to a file",
              "header_crc": "header CRC (seed's frame), into memory"}
    for mode, label in labels.items():
        rise = (f"{np.median(rises[mode]) / 2**20:.1f} MiB ({np.median(rises[mode]) / size:.2f}x)"
                if mode in rises else "-")
        print(f"{label:44} {spread(rates[mode]):>22} {np.median(rates[mode]) / bare:8.2f} {rise:>20}")
    ratio = float(np.median(rates["streamed"])) / bare
    rise_ratio = float(np.median(rises["streamed"])) / size
    print("\ntargets (ratios of this run):")
    print(f"  upload >= 70% of the bare socket: {ratio * 100:.0f}% -> "
          f"{'met' if ratio >= 0.7 else f'MISSED by {(0.7 - ratio) * 100:.0f} points'}")
    print(f"  receiver's peak RSS rise <= 1.2x the model before loading: {rise_ratio:.2f}x -> "
          f"{'met' if rise_ratio <= 1.2 else 'MISSED'}")
    (args.output / "upload.json").write_text(json.dumps(
        {"size_bytes": size, "rounds": args.rounds, "gb_per_s": rates, "peak_rss_rise_bytes": rises,
         "load_average": {"before": load_before, "after": load_after},
         "streamed_of_bare": ratio, "streamed_rss_rise_of_size": rise_ratio}, indent=1))
    print(f"wrote {args.output}/upload.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
