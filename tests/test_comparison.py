"""Run comparison: the statistics on series with known truth, and the scenario on real results (a real
ONNX Runtime board over the in-process transport, the real digits, the library's own writer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_run_identity import RUN, benchmark

from edge_ai_lib.core import comparison as stats
from edge_ai_lib.core.errors import MeasurementsError
from edge_ai_lib.scenarios.compare_runs import REGRESSION_EXIT_STATUS, compare_sets
from edge_ai_lib.scenarios.compare_runs import main as compare_main

FEATURES, CLASSES = 8 * 8, 10


def wandering_series(rng: np.random.Generator, n: int, phi: float, level_sd: float = 0.15,
                     noise_sd: float = 0.05, median_s: float = 1e-3) -> np.ndarray:
    """Times whose level drifts as an AR(1) process (log scale, stationary sd `level_sd`) plus noise:
    neighbouring samples are alike, as on a machine whose clock and caches wander. The true median of
    the process is `median_s` (the log-level is symmetric around 0)."""
    shocks = rng.normal(0.0, level_sd * np.sqrt(1 - phi ** 2), n)
    level = np.empty(n)
    level[0] = rng.normal(0.0, level_sd)
    for i in range(1, n):
        level[i] = phi * level[i - 1] + shocks[i]
    return median_s * np.exp(level + rng.normal(0.0, noise_sd, n))


def coverage(method: str, phi: float, replications: int, resamples: int = 400) -> float:
    """Share of intervals (new/base of two runs of one process: true ratio 1) that contain 1."""
    rng = np.random.default_rng(7)
    hits = 0
    for replication in range(replications):
        base, new = wandering_series(rng, 360, phi), wandering_series(rng, 360, phi)
        change = stats.median_ratio(base, new, method=method, resamples=resamples, seed=replication)
        hits += change.ci[0] <= 1.0 <= change.ci[1]
    return hits / replications


# -- statistics -----------------------------------------------------------------------------------

def test_a_drifting_series_fools_the_iid_bootstrap_but_not_the_batch_medians():
    """A/A on series whose level wanders (AR(1), phi 0.9): the i.i.d. bootstrap's 95% interval misses the
    true ratio more than half the time (it would flag most unchanged runs); the batch medians' stays
    near its nominal coverage."""
    iid = coverage("bootstrap", 0.9, 120)
    batch = coverage("batch-medians", 0.9, 400)
    assert iid < 0.6
    assert batch >= 0.88


def test_without_dependence_every_method_covers_as_promised():
    assert coverage("batch-medians", 0.0, 300) >= 0.92


@pytest.mark.slow
def test_the_block_bootstrap_sits_between():
    block, iid = coverage("block-bootstrap", 0.9, 150), coverage("bootstrap", 0.9, 150)
    assert iid + 0.2 < block < 0.95


def test_block_length_follows_the_autocorrelation():
    rng = np.random.default_rng(3)
    assert stats.automatic_block_length(rng.normal(size=400)) <= 3
    assert stats.automatic_block_length(wandering_series(rng, 400, 0.9, noise_sd=0.0)) >= 8
    assert stats.automatic_block_length([1.0] * 50) == 1


def test_a_real_slowdown_is_found_with_its_ratio():
    rng = np.random.default_rng(11)
    base = wandering_series(rng, 300, 0.8)
    new = wandering_series(rng, 300, 0.8) * 1.5
    change = stats.median_ratio(base, new)
    assert change.ci[0] < change.ratio < change.ci[1]
    assert change.ci[0] > 1.2 and change.p_value < 0.001


def runs_of_one_variant(rng: np.random.Generator, count: int, run_sd: float = 0.1) -> list[np.ndarray]:
    """`count` runs of one unchanged variant on a shared machine: each run's level is off by its own
    factor (log-normal, sd `run_sd`: other work on the core for a whole run), on top of drift within it."""
    return [wandering_series(rng, 240, 0.5, level_sd=0.05) * np.exp(rng.normal(0.0, run_sd)) for _ in range(count)]


def false_flags(base_runs: int, new_runs: int, replications: int) -> float:
    """Share of A/A comparisons (runs of one variant on both sides) whose interval misses the true ratio 1."""
    rng = np.random.default_rng(5)
    missed = 0
    for _ in range(replications):
        base, new = runs_of_one_variant(rng, base_runs), runs_of_one_variant(rng, new_runs)
        if base_runs == new_runs == 1:
            change = stats.median_ratio(base[0], new[0])
        else:
            change = stats.between_run_ratio([np.median(run) for run in base], [np.median(run) for run in new])
        missed += not change.ci[0] <= 1.0 <= change.ci[1]
    return missed / replications


def test_variation_between_runs_fools_one_run_a_side_but_not_repeats():
    """Unchanged runs whose level moves from run to run (as on this shared host): the within-run interval
    of one run a side misses most of the time, however well it holds within a run; each run's median as
    one observation keeps the 5% nominal rate, with repeats on both sides or on one."""
    assert false_flags(1, 1, 150) > 0.5
    assert false_flags(3, 3, 600) <= 0.07
    assert false_flags(4, 1, 600) <= 0.07


def test_repeats_find_a_real_slowdown_and_a_single_new_run_is_judged_by_the_base_spread():
    rng = np.random.default_rng(9)
    base = [np.median(run) for run in runs_of_one_variant(rng, 3, run_sd=0.05)]
    new = [np.median(run) * 1.6 for run in runs_of_one_variant(rng, 3, run_sd=0.05)]
    change = stats.between_run_ratio(base, new)
    assert change.between_runs and (change.base_runs, change.new_runs) == (3, 3)
    assert 1.2 < change.ci[0] < change.ratio < change.ci[1] and change.p_value < 0.01
    # one new run against five base runs: four degrees of freedom from the base side's spread
    more = [np.median(run) for run in runs_of_one_variant(rng, 5, run_sd=0.05)]
    one = stats.between_run_ratio(more, new[:1])
    assert one.new_runs == 1 and "judged against the spread of the base runs" in one.method
    assert one.ci[0] > 1.1
    with pytest.raises(MeasurementsError, match="needs two runs or more on one side"):
        stats.between_run_ratio(base[:1], new[:1])


def test_holm_adjustment():
    assert stats.holm_adjusted([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert stats.holm_adjusted([]) == []


def test_mcnemar_on_paired_outcomes():
    truth = np.arange(360) % 10
    base = truth.copy()
    new = truth.copy()
    new[:10] = (truth[:10] + 1) % 10  # ten samples lost, none gained
    change = stats.accuracy_change(base, truth, new, truth)
    assert (change.gained, change.lost, change.samples) == (0, 10, 360)
    assert change.p_value == pytest.approx(2 * 0.5 ** 10)
    assert change.change == pytest.approx(-10 / 360)
    assert change.ci[0] < change.change < change.ci[1] < 0
    same = stats.accuracy_change(base, truth, base, truth)
    assert same.p_value == 1.0 and same.ci[0] < 0 < same.ci[1]


def test_unpaired_outcomes_fall_back_to_fisher():
    change = stats.accuracy_change([1, 1, 0], [1, 1, 1], [1, 0], [1, 1])
    assert change.method.startswith("Fisher") and change.gained is None


def test_durations_read_in_their_unit():
    assert [stats.format_duration(s) for s in (2.13e-5, 1.25e-3, 2.1, None)] == ["21.3 µs", "1.25 ms", "2.1 s", "—"]


# -- real results ---------------------------------------------------------------------------------

def slow_onnx_model(path: Path, hidden: int = 4096) -> None:
    """The tiny model's outputs (y = x @ W + b, as tests' tiny_onnx_model) plus a side branch of two large
    products multiplied by zero: the same answers, more work per call."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(FEATURES * CLASSES, dtype=np.float32).reshape(FEATURES, CLASSES) / 10
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"]),
         helper.make_node("MatMul", ["input", "W1"], ["h"]), helper.make_node("MatMul", ["h", "W2"], ["side"]),
         helper.make_node("Mul", ["side", "zero"], ["nothing"]), helper.make_node("Add", ["y", "nothing"], ["output"])],
        "slow",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", CLASSES])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.ones(CLASSES, np.float32), "b"),
         numpy_helper.from_array(rng.normal(size=(FEATURES, hidden)).astype(np.float32), "W1"),
         numpy_helper.from_array(rng.normal(size=(hidden, CLASSES)).astype(np.float32), "W2"),
         numpy_helper.from_array(np.zeros(CLASSES, np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


# five runs a side: a single new run judged against the base runs' spread needs the degrees of freedom
# (the README gives the same advice)
REPEATS = 5


@pytest.fixture(scope="module")
def result_sets(tmp_path_factory):
    """Real result sets of two runs each, five repeats of every set (one directory per repeat, as copies
    of results/benchmarks after each workflow run): a base, an unchanged rerun, and one whose
    memory-board run is slower (a model with the same outputs and more work)."""
    from edge_ai_lib.datasets.digits import DigitsDataset

    root = tmp_path_factory.mktemp("sets")
    digits = DigitsDataset(root / "digits")
    other = {**RUN, "board": "other-board"}
    sets = {name: [] for name in ("base", "same", "slower")}
    # interleaved (base, same, slower, base, ...): a change of the machine's load during the module hits
    # every set alike instead of passing for a difference between them
    for repeat in range(1, REPEATS + 1):
        for name in sets:
            directory = root / f"{name}-{repeat}"
            directory.mkdir()
            if name == "slower":
                slow_onnx_model(directory / "tiny.onnx")
            benchmark(directory, digits, "a", RUN, num_threads=1, max_samples=200)
            second = root / f"{name}-{repeat}-other"
            second.mkdir()
            path = benchmark(second, digits, "b", other, num_threads=1, max_samples=200)
            shutil.copy(path, directory / "results" / "b.json")
            sets[name].append(directory / "results")
    return sets


def arguments(option: str, directories: list[Path]) -> list[str]:
    return [option, *map(str, directories)]


@pytest.mark.slow  # real benchmarks: 30 of them, about 45 s on 2 busy cores
def test_unchanged_repeated_runs_are_not_flagged(result_sets):
    comparison = compare_sets(result_sets["base"], result_sets["same"])
    assert [run.key for run in comparison.runs] == ["tiny/onnxruntime/memory-board/t1",
                                                    "tiny/onnxruntime/other-board/t1"]
    assert not comparison.regressions and not comparison.single_runs
    for run in comparison.runs:
        assert run.status == "compared" and len(run.base_paths) == len(run.new_paths) == REPEATS
        assert run.latency.between_runs and (run.latency.base_runs, run.latency.new_runs) == (REPEATS, REPEATS)
        assert run.accuracy.change == 0 and run.accuracy.p_value == 1.0
        assert run.accuracy.verdict == "indistinguishable"


@pytest.mark.slow
def test_the_slower_run_and_only_it_is_flagged_between_runs(result_sets, tmp_path, capsys):
    output = tmp_path / "comparison.json"
    with pytest.raises(SystemExit) as stopped:
        compare_main([*arguments("--baseline", result_sets["base"]), *arguments("--new", result_sets["slower"]),
                      "--json", str(output)])
    assert stopped.value.code == REGRESSION_EXIT_STATUS
    printed = capsys.readouterr()
    assert "1 of 2 runs regressed: tiny/onnxruntime/memory-board/t1" in printed.err
    table = printed.out.splitlines()
    slow_line = next(line for line in table if line.startswith("tiny/onnxruntime/memory-board/t1"))
    assert "slower (p=" in slow_line and f"{REPEATS}+{REPEATS} runs)" in slow_line and "REGRESSION" in slow_line
    assert "Between runs: each run's median is one observation" in printed.out
    document = json.loads(output.read_text())
    assert document["regressed"] == ["tiny/onnxruntime/memory-board/t1"] and document["single_runs"] == []
    slow = document["runs"][0]
    # the model does ~5x the work; the interval holds the spread between runs of a busy machine
    assert slow["latency"]["verdict"] == "slower" and slow["latency"]["ci"][0] > 1.3
    assert slow["latency"]["between_runs"] and slow["latency"]["between_run_sd"] > 0
    assert slow["accuracy"]["change"] == 0  # the same answers
    assert document["runs"][1]["regressions"] == []


@pytest.mark.slow
def test_one_run_a_side_says_between_run_variation_is_unmeasured_and_does_not_gate(result_sets, capsys):
    base, slower = result_sets["base"][:1], result_sets["slower"][:1]
    compare_main([*arguments("--baseline", base), *arguments("--new", slower)])
    printed = capsys.readouterr().out
    slow_line = next(line for line in printed.splitlines() if line.startswith("tiny/onnxruntime/memory-board/t1"))
    assert "slower in this pair only" in slow_line and "between-run variation unmeasured" in slow_line
    assert slow_line.rstrip().endswith("unconfirmed")
    # the slowed run is among them (an unchanged run may join it on a loaded machine: with one run a side
    # nothing can tell its noise from a change, which is what "unconfirmed" says)
    summary = next(line for line in printed.splitlines() if "unconfirmed slowdowns with one run a side" in line)
    assert "tiny/onnxruntime/memory-board/t1" in summary
    with pytest.raises(SystemExit) as stopped:
        compare_main([*arguments("--baseline", base), *arguments("--new", slower), "--gate-single-runs"])
    assert stopped.value.code == REGRESSION_EXIT_STATUS


@pytest.mark.slow
def test_a_single_new_run_is_judged_against_the_spread_of_repeated_base_runs(result_sets):
    comparison = compare_sets(result_sets["base"], result_sets["slower"][:1])
    slow = comparison.by_key()["tiny/onnxruntime/memory-board/t1"]
    assert slow.latency.between_runs and (slow.latency.base_runs, slow.latency.new_runs) == (REPEATS, 1)
    assert "the single run judged against the spread of the base runs" in slow.latency.method
    assert slow.regressions and slow.latency.ci[0] > 1.5


@pytest.mark.slow
def test_an_unchanged_set_exits_zero_and_a_threshold_can_excuse_a_slowdown(result_sets, capsys):
    compare_main([*arguments("--baseline", result_sets["base"]), *arguments("--new", result_sets["same"]),
                  "--latency-threshold", "1.0"])
    assert "no regression in 2 runs" in capsys.readouterr().out
    compare_main([*arguments("--baseline", result_sets["base"]), *arguments("--new", result_sets["slower"]),
                  "--latency-threshold", "1000"])
    assert "no regression" in capsys.readouterr().out


@pytest.mark.slow
def test_runs_on_one_side_only_and_settings_differences_are_named(result_sets, tmp_path):
    base = result_sets["base"][0]
    lone = tmp_path / "lone.json"
    document = json.loads((result_sets["same"][0] / "a.json").read_text())
    document["run"]["threads"] = 4
    document["run"]["settings"]["runtime"]["args"]["num_threads"] = 4
    document["board_provenance"]["cpu"] = "Another CPU"
    document["board_provenance"]["load_average"] = [9.0, 5.0, 2.0]
    lone.write_text(json.dumps(document))
    comparison = compare_sets([base / "a.json"], [lone])
    assert {run.key: run.status for run in comparison.runs} == {
        "tiny/onnxruntime/memory-board/t1": "only in base", "tiny/onnxruntime/memory-board/t4": "only in new"}
    document["run"]["threads"] = 1
    lone.write_text(json.dumps(document))
    (run,) = compare_sets([base / "a.json"], [lone]).runs
    assert "setting runtime.args.num_threads: 1 -> 4" in run.differences
    assert any(text.startswith("board cpu: ") and text.endswith("-> Another CPU") for text in run.differences)
    (loaded,) = [text for text in compare_sets([base / "a.json"], [lone]).warnings
                 if text.startswith("1 of 1 new runs")]
    assert "load average up to 9.00 over the last minute on" in loaded
    assert any("machines or software that differ" in text for text in run.warnings)


@pytest.mark.slow
def test_a_file_or_a_measurement_given_twice_and_empty_directories_are_refused(result_sets, tmp_path):
    with pytest.raises(MeasurementsError, match="is given twice"):
        compare_sets([result_sets["base"][0]], [result_sets["same"][0], result_sets["same"][0]])
    copy = tmp_path / "copy"
    shutil.copytree(result_sets["same"][0], copy)
    with pytest.raises(MeasurementsError, match="hold the same measurement: each repeat of a run must be a run"):
        compare_sets([result_sets["base"][0]], [result_sets["same"][0], copy])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MeasurementsError, match="holds no benchmark result"):
        compare_sets([tmp_path / "empty"], [result_sets["same"][0]])


# -- the workflow target ---------------------------------------------------------------------------

def dry_run(*arguments: str) -> str:
    import subprocess
    import sys

    from conftest import REPO

    snakemake = str(Path(sys.executable).with_name("snakemake"))
    done = subprocess.run([snakemake, "--dry-run", "--printshellcmds", "--cores", "2", "results/comparison.json",
                           *arguments], cwd=REPO, capture_output=True, text=True, timeout=300)
    return done.stdout + done.stderr


@pytest.mark.slow
def test_the_workflow_compares_with_a_configured_baseline(tmp_path):
    planned = dry_run("--config", f"comparison={{baseline: {tmp_path}}}")
    assert "rule compare_runs:" in planned
    spec = json.loads(planned.split("compare_runs --spec '")[1].split("' >")[0])["options"]
    assert spec["baseline"] == [str(tmp_path)] and spec["latency_threshold"] == 0.1
    assert all(path.startswith("results/benchmarks/") for path in spec["new"]) and spec["new"]
    refused = dry_run()
    assert "results/comparison.json needs a baseline: give the earlier results with --config" in refused
