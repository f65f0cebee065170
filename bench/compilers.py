"""`make bench`: median host latency of each compiler's model, as ratios to ONNX Runtime, in one run.

Models: the default config's digits CNNs (Keras, PyTorch) and MobileNetV2 0.35/96 (untrained: timing does
not depend on the weights), built as bench/run_bench.py builds them. Variants: TFLite float32 and int8,
ONNX Runtime, TVM untuned (and the steps that make it fast: TVM's default Relax pipeline as it is, then
our loop reordering for a generic x86-64 CPU, then for this CPU's exact mcpu) and TVM tuned with
MetaSchedule (at most 16 trials per task, 640 in all, and a 600 s cap per model; the databases are kept in
results/bench/tvm-tuning, keyed by the models' operators, so a second run does not tune again).

Each figure is measured in `--rounds` rounds (variants interleaved within a round, so drifting load hits
all alike); a round's figure is the median of `--calls` timed runtime calls after a warm-up. The table
gives the median of the rounds and their range, and the load average. One thread per runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import build_models  # noqa: E402

RUNTIMES = {"tflite": "edge_ai_lib.runtimes.tflite.TFLiteRuntime",
            "onnxruntime": "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime",
            "tvm": "edge_ai_lib.runtimes.tvm.TVMRuntime"}
# TVM variants: the steps from TVM's defaults to our untuned setting (see docs/tvm.md)
TVM_STEPS = {
    "tvm-relax-default": {"pipeline": "default", "mcpu": "x86-64"},
    "tvm-reorder-x86-64": {"pipeline": "reorder", "mcpu": "x86-64"},
    "tvm-reorder-O0": {"pipeline": "reorder", "opt_level": 0},
    "tvm": {},
}


def tune_in_subprocess(source: Path, database: Path, trials: int, per_task: int | None, cap_s: float) -> dict:
    """Tune `source` into `database` (the compiler's own time cap stops it, keeping what was measured) in a
    child process, so that TVM's tuning threads and workers are gone before anything is timed. The child's
    progress goes to this terminal; its record comes back in a file."""
    result = database.parent / f"{database.name}.result.json"
    result.unlink(missing_ok=True)
    code = ("import sys, json; from pathlib import Path; from edge_ai_lib.compilers.tvm import TVMCompiler; "
            "c = TVMCompiler(None, Path(sys.argv[2]) / 'unused.so', tuning_trials=int(sys.argv[3]), "
            "tuning_trials_per_task=int(sys.argv[4]) or None, tuning_time_cap_s=float(sys.argv[5]), "
            "tuning_database=Path(sys.argv[2])); Path(sys.argv[6]).write_text(json.dumps(c.tune(Path(sys.argv[1]))))")
    guard_s = cap_s + 300  # the cap is checked between batches: a last batch, then the final collection
    database.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([sys.executable, "-c", code, str(source), str(database), str(trials),
                               str(per_task or 0), str(cap_s), str(result)], timeout=guard_s)
    except subprocess.TimeoutExpired:
        return {"failure": f"not finished within {guard_s:.0f} s, {cap_s:.0f} s after the cap"}
    if done.returncode != 0 or not result.is_file():
        return {"failure": f"tuning failed (exit status {done.returncode}; its output is above)"}
    return json.loads(result.read_text())


def compile_tvm(models: dict, directory: Path, args) -> dict:
    """Every TVM variant of every model; returns what tuning took per model."""
    from edge_ai_lib.compilers.tvm import TVMCompiler

    tuning = {}
    for name, model in models.items():
        source = model["onnx"]
        for variant, settings in TVM_STEPS.items():
            model[variant] = TVMCompiler(None, directory / f"{name}-{variant}.so", **settings).compile(source)
        if args.tuning_trials:
            database = Path(args.tuning_cache) / name
            record = tune_in_subprocess(source, database, args.tuning_trials, args.tuning_trials_per_task,
                                        args.tuning_cap_s)
            tuning[name] = record
            if "failure" not in record:
                model["tvm-tuned"] = TVMCompiler(
                    None, directory / f"{name}-tuned.so", tuning_trials=args.tuning_trials,
                    tuning_trials_per_task=args.tuning_trials_per_task or None, tuning_time_cap_s=args.tuning_cap_s,
                    tuning_database=database).compile(source)
    return tuning


def runtime_for(variant: str) -> str:
    return RUNTIMES["tvm" if variant.startswith("tvm") else "tflite" if variant.startswith("tflite") else
                    "onnxruntime"]


def median_call(runtime, calls: int, warmup: int) -> float:
    for _ in range(warmup):
        runtime.run()
    return float(np.median([runtime.run() for _ in range(calls)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--tuning-trials", type=int, default=640,
                        help="MetaSchedule trials per model (enough for 40 tasks of 16); 0: no tuning")
    parser.add_argument("--tuning-trials-per-task", type=int, default=16, help="0: the trials spread evenly")
    parser.add_argument("--tuning-cap-s", type=float, default=600,
                        help="Time cap of one model's tuning (the trials measured by then are kept)")
    parser.add_argument("--tuning-cache", default="results/bench/tvm-tuning")
    parser.add_argument("--output", default="results/bench/compilers.json")
    args = parser.parse_args()
    from edge_ai_lib.compilers.tflite import TFLiteCompiler
    from edge_ai_lib.core.args import load_class

    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-compilers-") as tmp:
        directory = Path(tmp)
        models = build_models(directory)
        for name, model in models.items():
            model["tflite-float32"] = model.pop("tflite")
            # the model's own ONNX export (ONNX Runtime's optimised file may hold its contrib operators)
            model["onnx"] = directory / ("mobilenet.onnx" if name.startswith("mobilenet") else
                                         f"{name}-ort-source.onnx")
            source = directory / ("mobilenet.keras" if name.startswith("mobilenet") else f"{name}.keras")
            if source.is_file():  # int8 needs representative samples: random ones, timing does not depend on them
                compiler = TFLiteCompiler(None, directory / f"{name}-int8.tflite", model_framework="keras",
                                          target="int8", inference_input_type="float32",
                                          inference_output_type="float32", representative_samples=8)
                shape = model["input"].shape
                compiler.representative_inputs = lambda wrapper, count, seed=0, shape=shape: [
                    np.random.default_rng(i).random(shape, dtype=np.float32) for i in range(count)]
                model["tflite-int8"] = compiler.compile(source)
        tuning_started = time.perf_counter()
        tuning = compile_tvm(models, directory, args)
        tuning_s = time.perf_counter() - tuning_started
        variants = ["tflite-float32", "tflite-int8", "onnxruntime", *TVM_STEPS, "tvm-tuned"]
        runtimes = {}
        for name, model in models.items():
            for variant in variants:
                if variant not in model:
                    continue
                instance = load_class(runtime_for(variant))(directory / f"received-{name}-{variant}",
                                                            num_threads=1)
                instance.load_model(Path(model[variant]))
                instance.set_inputs([model["input"]])
                runtimes[(name, variant)] = instance
        load_before = os.getloadavg()
        rounds: dict[tuple[str, str], list[float]] = {key: [] for key in runtimes}
        for _ in range(args.rounds):
            for key, instance in runtimes.items():
                rounds[key].append(median_call(instance, args.calls, args.warmup))
        load_after = os.getloadavg()
    table = {}
    print(f"\nMedian host latency per call, 1 thread, {args.rounds} rounds x {args.calls} calls; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min), {os.cpu_count()} CPUs")
    print(f"{'model':22} {'variant':20} {'median [us]':>12} {'range [us]':>20} {'x ONNX Runtime':>15}")
    for name in models:
        reference = np.median(rounds[(name, "onnxruntime")])
        for variant in variants:
            if (name, variant) not in rounds:
                continue
            values = rounds[(name, variant)]
            median = float(np.median(values))
            table[f"{name}/{variant}"] = {"median_s": median, "rounds_s": values, "ratio_to_onnxruntime":
                                          median / reference}
            print(f"{name:22} {variant:20} {median * 1e6:12.1f} {min(values) * 1e6:9.1f} - {max(values) * 1e6:8.1f} "
                  f"{median / reference:15.2f}")
    for name, record in tuning.items():
        if "failure" in record:
            print(f"tuning {name}: {record['failure']}")
        else:
            print(f"tuning {name}: {record['trials']} measured trials in {record['seconds']:.0f} s"
                  f"{', stopped by the cap' if record.get('capped') else ''} (budget {args.tuning_trials} trials, "
                  f"at most {args.tuning_trials_per_task or 'an even share'} per task, cap {args.tuning_cap_s:.0f} s;"
                  f" tuned {'in an earlier run: database reused' if record.get('reused') else 'in this run'})")
    print(f"TVM compilation and tuning took {tuning_s:.0f} s in all")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"latency": table, "tuning": tuning, "load_average": [load_before, load_after],
                                  "rounds": args.rounds, "calls": args.calls}, indent=2) + "\n")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
