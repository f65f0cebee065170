"""Statistics against values computed by hand, the measured pass, the result schema, and quality metrics.

Percentiles follow numpy's "linear" method (Hyndman & Fan type 7): the q-th percentile of n sorted
samples sits at position (n - 1) * q / 100, interpolated linearly.
"""

import json
import math

import numpy as np
import pytest

from edge_ai_lib.core.errors import MeasurementsError
from edge_ai_lib.core.measured_pass import PassPosition, measure_split
from edge_ai_lib.core.provenance import collect_provenance
from edge_ai_lib.core.quality import classification_quality
from edge_ai_lib.core.results import SCHEMA_VERSION, build_result, read_result, write_result
from edge_ai_lib.core.timing import TimingRecord, bootstrap_median_ci, latency_statistics, spread_warnings

# 1..10 ms: mean 5.5 ms; median 5.5 ms; p90 at position 8.1 -> 9 + 0.1 = 9.1 ms;
# p99 at position 8.91 -> 9 + 0.91 = 9.91 ms; sample std = sqrt(82.5 / 9) ms = 3.0277 ms.
TEN = [i / 1000 for i in range(1, 11)]


def test_statistics_match_hand_computed_values():
    stats = latency_statistics(TEN)
    assert stats.count == 10
    assert stats.mean == pytest.approx(0.0055)
    assert stats.median == pytest.approx(0.0055)
    assert stats.p90 == pytest.approx(0.0091)
    assert stats.p99 == pytest.approx(0.00991)
    assert stats.std == pytest.approx(math.sqrt(82.5 / 9) / 1000)
    assert stats.min == pytest.approx(0.001) and stats.max == pytest.approx(0.010)
    # 10 calls of one sample in 55 ms
    assert stats.samples_per_second == pytest.approx(10 / 0.055)
    assert stats.coefficient_of_variation == pytest.approx(math.sqrt(82.5 / 9) / 5.5)


def test_samples_per_second_counts_samples_not_calls():
    assert latency_statistics([0.5, 0.5], batch_size=8).samples_per_second == pytest.approx(16.0)


def test_odd_count_median_and_percentile_positions():
    stats = latency_statistics([3.0, 1.0, 2.0])
    assert stats.median == 2.0
    assert stats.p90 == pytest.approx(2.8)  # position 1.8 between 2 and 3


def test_bootstrap_interval_brackets_the_median_and_is_reproducible():
    rng = np.random.default_rng(1)
    samples = rng.normal(0.010, 0.001, 500)
    low, high = bootstrap_median_ci(samples)
    assert low < np.median(samples) < high
    assert high - low < 0.0005
    assert (low, high) == bootstrap_median_ci(samples)


def test_bootstrap_of_constant_samples_is_a_point():
    assert bootstrap_median_ci(np.full(50, 0.002)) == (0.002, 0.002)


def test_spread_warning_above_ten_percent_cv():
    steady = latency_statistics([0.010, 0.0101, 0.0099, 0.010])
    noisy = latency_statistics([0.010, 0.020, 0.005, 0.012])
    assert spread_warnings(steady) == []
    (warning,) = spread_warnings(noisy)
    assert "coefficient of variation" in warning and "> 10%" in warning


def test_cold_and_warmup_calls_are_kept_apart():
    record = TimingRecord(warmup_count=2)
    flags = [record.add(t) for t in (0.5, 0.2, 0.1, 0.01, 0.02)]
    assert flags == [False, False, False, True, True]
    data = record.to_dict()
    assert data["cold_first_inference_s"] == 0.5
    assert data["warmup"]["samples_s"] == [0.2, 0.1]
    assert data["samples_s"] == [0.01, 0.02]
    assert data["statistics"]["median"] == pytest.approx(0.015)
    assert data["statistics"]["max"] == pytest.approx(0.02)


def test_no_measured_samples_is_a_clear_error():
    record = TimingRecord(warmup_count=5)
    record.add(0.1)
    with pytest.raises(MeasurementsError, match="no timing samples"):
        record.to_dict()


class CountingDataset:
    """Seven samples whose inputs are their own indices, so a test sees which samples each call got."""

    batch_size = 2

    def split_size(self, split):
        return 7

    def iter_batches(self, split, batch_size=None, max_samples=None):
        indices = np.arange(min(7, max_samples or 7))
        for start in range(0, indices.size, batch_size):
            yield indices[start:start + batch_size], indices[start:start + batch_size] % 3


def test_measured_pass_warms_up_on_the_first_batch_then_runs_each_sample_once():
    calls = []

    def run(prepared):
        calls.append(prepared.tolist())
        return 0.001 * len(calls), prepared * 10

    position = PassPosition()
    measured = measure_split(CountingDataset(), "validation", lambda inputs: inputs + 100, run, warmup=2,
                             max_samples=5, progress=False, position=position)
    assert calls == [[100, 101]] * 3 + [[100, 101], [102, 103], [104]]
    assert measured.timing.cold_first_s == 0.001 and measured.timing.warmup_s == [0.002, 0.003]
    assert measured.timing.samples_s == [0.004, 0.005, 0.006]
    assert np.concatenate(measured.outputs).tolist() == [1000, 1010, 1020, 1030, 1040]
    assert measured.labels.tolist() == [0, 1, 2, 0, 1]
    assert position == PassPosition(warming_up=False, measured=5, total=5) and measured.wall_s > 0


def test_measured_pass_position_names_the_sample_a_failure_interrupted():
    def run(prepared):
        if prepared[0] == 4:
            raise RuntimeError("board died")
        return 0.001, prepared

    position = PassPosition()
    with pytest.raises(RuntimeError):
        measure_split(CountingDataset(), "validation", lambda inputs: inputs, run, warmup=0, progress=False,
                      position=position)
    assert position == PassPosition(warming_up=False, measured=4, total=7)


def test_quality_metrics_on_known_predictions():
    # 4 samples, 3 classes; predictions 0,1,1,2 for truth 0,1,2,2 -> accuracy 0.75
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])
    truth = np.array([0, 1, 2, 2])
    quality = classification_quality(probabilities, truth, ["a", "b", "c"], top_k=(1, 2))
    assert quality["accuracy"] == 0.75
    assert quality["top_k_accuracy"] == {"1": 0.75, "2": 1.0}
    assert quality["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert quality["per_class"]["b"]["precision"] == 0.5
    assert quality["per_class"]["c"]["recall"] == 0.5
    assert quality["per_class"]["c"]["support"] == 2


def test_quality_rejects_scores_for_another_class_count():
    with pytest.raises(MeasurementsError, match="dataset has 3 classes"):
        classification_quality(np.ones((2, 5)), np.array([0, 1]), ["a", "b", "c"])


def _document():
    record = TimingRecord(warmup_count=0)
    for t in (0.3, 0.01, 0.011, 0.012):
        record.add(t)
    quality = classification_quality(np.eye(2), np.array([0, 1]), ["x", "y"])
    return build_result("inference_performance",
                          {"wrapper": "w", "framework": "f", "framework_version": "1", "path": "p", "size_bytes": 3},
                          {"class": "d", "split": "validation", "sample_count": 2}, quality, record,
                          collect_provenance({"x": 1}))


def test_result_round_trip_through_the_schema(tmp_path):
    path = write_result(tmp_path / "r.json", _document())
    document = read_result(path)
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["performance"]["samples_s"] == [0.01, 0.011, 0.012]
    assert document["provenance"]["packages"]["numpy"] == np.__version__
    assert not list(tmp_path.glob("*.tmp"))


def test_schema_violation_names_the_field(tmp_path):
    document = _document()
    document["dataset"]["sample_count"] = 0
    with pytest.raises(MeasurementsError, match="dataset/sample_count"):
        write_result(tmp_path / "r.json", document)
    assert not (tmp_path / "r.json").exists()


def test_reading_a_result_of_another_version_says_so(tmp_path):
    document = _document()
    document["schema_version"] = 99
    path = tmp_path / "old.json"
    path.write_text(json.dumps(document))
    with pytest.raises(MeasurementsError, match="schema version 99"):
        read_result(path)


def test_reading_a_broken_result_says_so(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(MeasurementsError, match="not valid JSON"):
        read_result(path)


def test_outcomes_must_match_the_evaluated_samples(tmp_path):
    from edge_ai_lib.core.results import outcomes_section

    document = _document()
    document["outcomes"] = outcomes_section(np.eye(2), np.array([0, 1]), np.eye(2, dtype=np.float32), "r-outputs.npy")
    assert document["outcomes"]["predicted_class"] == [0, 1] and document["outcomes"]["outputs_shape"] == [2, 2]
    write_result(tmp_path / "r.json", document)
    document["outcomes"]["true_class"] = [0]
    with pytest.raises(MeasurementsError, match="do not match its 2 evaluated samples .*true_class: 1"):
        write_result(tmp_path / "r.json", document)


def test_a_board_result_without_its_run_breaks_the_schema(tmp_path):
    document = _document()
    document["kind"] = "inference_client"
    with pytest.raises(MeasurementsError, match="'run' is a required property"):
        write_result(tmp_path / "r.json", document)


def test_machine_provenance_imports_no_framework():
    """What a board reports of itself is collected without importing any framework (versions come
    from package metadata), so a board with one runtime installed pays nothing for the others."""
    import subprocess
    import sys

    code = ("import sys, json; from edge_ai_lib.core.provenance import machine_provenance; "
            "p = machine_provenance(); "
            "heavy = {'tensorflow', 'torch', 'onnxruntime', 'tvm', 'keras', 'ai_edge_litert', 'onnx'} "
            "& set(sys.modules); "
            "print(json.dumps({'heavy': sorted(heavy), 'keys': sorted(p)}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["heavy"] == []
    assert {"cpu", "cpu_count_logical", "cpu_count_physical", "os", "kernel", "machine", "python", "packages",
            "cpu_governor"} <= set(found["keys"])
