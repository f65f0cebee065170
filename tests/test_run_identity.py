"""Results that know what they are: the run's identity, the board's provenance, per-sample outcomes,
and the summary files and report built from them (a real ONNX Runtime board over the in-process
transport, the real digits dataset, the real writer, report and summaries)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from protocol_helpers import MemoryBoard, tiny_onnx_model

from edge_ai_lib.core.args import Argument, ArgumentsMixin
from edge_ai_lib.core.errors import ConfigurationError, MeasurementsError
from edge_ai_lib.core.provenance import collect_provenance
from edge_ai_lib.core.results import SCHEMA_VERSION, outputs_file_name, read_outputs, read_result
from edge_ai_lib.core.runtimeprotocol import ClientSession
from edge_ai_lib.core.wire import decode_tensors, encode_tensors
from edge_ai_lib.plots import write_run_outputs
from edge_ai_lib.runtimes.onnxruntime import ONNXRuntime
from edge_ai_lib.scenarios.inference_client import check_run_keys, run_session, session_document
from edge_ai_lib.scenarios.render_report import main as render_report

FEATURES, CLASSES = 8 * 8, 10
SEED_FIELDS = MemoryBoard.SEED_FIELDS
ORT = "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime"


class FlatWrapper:
    """The host side of a model that takes flattened 8x8 images and returns one score per class."""

    def __init__(self, path: Path):
        self.path = path

    def convert_input_to_bytes(self, inputs):
        return encode_tensors([inputs.reshape(len(inputs), FEATURES).astype(np.float32)])

    def convert_output_from_bytes(self, data):
        return decode_tensors(data)[0]

    def postprocess_outputs(self, outputs):
        return outputs

    def describe(self):
        return {"wrapper": "tests.FlatWrapper", "framework": "onnx", "framework_version": "1",
                "path": str(self.path), "size_bytes": self.path.stat().st_size}


def benchmark(directory: Path, digits, name: str, run: dict | None, num_threads: int | None = None,
              seed_only: bool = False, max_samples: int = 40) -> Path:
    """One benchmark of the tiny model on a memory board, written as inference_client writes it."""
    model = directory / "tiny.onnx"
    if not model.exists():
        tiny_onnx_model(model, features=FEATURES, classes=CLASSES)
    board = MemoryBoard(directory, resource_interval=0.01, num_threads=num_threads, seed_only=seed_only)
    client = board.client()
    try:
        result = run_session(client, FlatWrapper(model), digits, model.read_bytes(), warmup=2,
                             max_samples=max_samples, progress=False)
    finally:
        client.disconnect()
        board.close()
    settings = {"compiler": {"class": "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler", "args": {}},
                "runtime": {"class": ORT, "args": {"num_threads": num_threads}},
                "protocol": {"class": "edge_ai_lib.runtimeprotocols.memory.MemoryProtocol", "args": {}},
                "board": None}
    compiled = {"compiler": settings["compiler"]["class"], "path": str(model), "size_bytes": model.stat().st_size}
    outputs_file = outputs_file_name(name)
    document = session_document(result, FlatWrapper(model), digits, "validation", compiled, ORT,
                                collect_provenance({}), {"name": "memory"}, run, settings, outputs_file)
    path, _ = write_run_outputs(directory / "results", name, document, {outputs_file: result.outputs})
    return path


# -- a dict argument ------------------------------------------------------------------------------

class WithRun(ArgumentsMixin):
    arguments = (Argument("run", dict, None, "the run"),)

    def __init__(self, **settings):
        self.configure(settings)


def test_a_dict_argument_takes_a_mapping_from_a_spec_and_json_on_the_command_line():
    assert WithRun(run={"board": "local"}).run == {"board": "local"}
    assert WithRun(run='{"threads": 2}').run == {"threads": 2}
    assert WithRun().run is None
    parser, _ = WithRun.form_argparse()
    assert parser.parse_args(["--run", '{"model": "m"}']).run == {"model": "m"}


@pytest.mark.parametrize("value, message", [
    ("[1, 2]", "expected a JSON object"), ("{model: m}", "is not valid JSON"), (3, "expected a JSON object")])
def test_a_dict_argument_refuses_anything_but_an_object(value, message):
    with pytest.raises(ConfigurationError, match=f"WithRun argument run: .*{message}"):
        WithRun(run=value)


def test_a_dict_argument_on_the_command_line_is_refused_in_one_line(capsys):
    parser, _ = WithRun.form_argparse()
    with pytest.raises(SystemExit):
        parser.parse_args(["--run", "model=m"])
    assert "argument --run: 'model=m' is not valid JSON" in capsys.readouterr().err


def test_run_keys_are_checked_before_any_work():
    assert check_run_keys({"model": "m", "threads": None}) == {"model": "m", "threads": None}
    with pytest.raises(ConfigurationError, match="--run has no key 'dataset'; known: model, compiler, board"):
        check_run_keys({"dataset": "digits"})
    with pytest.raises(ConfigurationError, match="threads must be a whole number"):
        check_run_keys({"threads": "4"})


# -- the board's answer to MODEL -------------------------------------------------------------------

def test_model_answer_carries_the_board_provenance_and_the_threads_in_use(tmp_path):
    tiny_onnx_model(tmp_path / "tiny.onnx")
    board = MemoryBoard(tmp_path, resource_interval=0.01, num_threads=1)
    client = board.client()
    try:
        answer = ClientSession(client).upload_model((tmp_path / "tiny.onnx").read_bytes())
    finally:
        client.disconnect()
        board.close()
    assert answer["threads"] == 1 and answer["num_threads"] == 1
    provenance = answer["provenance"]
    assert {"cpu", "cpu_count_logical", "cpu_count_physical", "os", "kernel", "machine", "python", "packages",
            "cpu_governor"} <= set(provenance)
    assert provenance["packages"]["onnxruntime"] and provenance["cpu_count_logical"] >= 1
    governor = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    assert provenance["cpu_governor"] == (governor.read_text().strip() if governor.is_file() else None)


def test_onnxruntime_default_threads_are_resolved(tmp_path):
    from edge_ai_lib.core.provenance import physical_cores_available

    runtime = ONNXRuntime(tmp_path / "m.onnx")
    tiny_onnx_model(tmp_path / "m.onnx")
    assert runtime.load_and_describe(tmp_path / "m.onnx")["threads"] == physical_cores_available() >= 1


# -- the result -----------------------------------------------------------------------------------

RUN = {"model": "tiny", "compiler": "onnxruntime", "board": "memory-board", "threads": 1}


def test_the_result_knows_its_run_outcomes_and_board(tmp_path, digits):
    path = benchmark(tmp_path, digits, "memory-board-t1", RUN, num_threads=1)
    document = read_result(path)
    assert document["schema_version"] == SCHEMA_VERSION == 2
    run = document["run"]
    assert {k: run[k] for k in RUN} == RUN
    assert run["threads_reported_by_board"] is True and run["threads_requested"] == 1
    assert run["settings"]["runtime"] == {"class": ORT, "args": {"num_threads": 1}}
    assert run["settings"]["compiler"]["class"].endswith("ONNXRuntimeCompiler") and run["settings"]["board"] is None
    assert document["board_provenance"]["packages"]["onnxruntime"]
    assert document["provenance"]["hostname"]  # the host's own stays beside the board's
    assert "provenance" not in document["runtime"]

    outcomes = document["outcomes"]
    outputs = read_outputs(path)
    assert outcomes["outputs_file"] == "memory-board-t1-outputs.npy"
    assert (path.parent / outcomes["outputs_file"]).is_file()
    assert outputs.shape == (40, CLASSES) and outcomes["outputs_shape"] == [40, CLASSES]
    assert outcomes["predicted_class"] == outputs.argmax(axis=1).tolist()
    inputs, labels = digits.get_split_arrays("validation")
    assert outcomes["true_class"] == labels[:40].tolist()
    weights = np.arange(FEATURES * CLASSES, dtype=np.float32).reshape(FEATURES, CLASSES) / 10  # tiny_onnx_model's
    np.testing.assert_allclose(outputs, inputs[:40].reshape(40, FEATURES) @ weights + 1, rtol=1e-5)
    accuracy = float(np.mean(np.array(outcomes["predicted_class"]) == np.array(outcomes["true_class"])))
    assert accuracy == pytest.approx(document["quality"]["accuracy"])


def test_a_board_that_answers_model_with_the_seed_fields_only_still_works(tmp_path, digits):
    path = benchmark(tmp_path, digits, "seed", {"board": "seed-board", "threads": 3}, seed_only=True)
    document = read_result(path)
    assert document["board_provenance"] is None
    assert document["run"] == {**document["run"], "model": None, "compiler": None, "board": "seed-board",
                               "threads": 3, "threads_requested": 3, "threads_reported_by_board": False}
    assert document["compiled_model"]["load_time_s"] is not None  # a seed field
    assert document["quality"]["sample_count"] == 40


def test_threads_that_differ_from_the_request_are_warned_about(tmp_path, digits):
    path = benchmark(tmp_path, digits, "asked-2", {**RUN, "threads": 2}, num_threads=1)
    document = read_result(path)
    assert document["run"]["threads"] == 1 and document["run"]["threads_requested"] == 2
    assert any("ran on 1 threads, 2 were asked for" in w for w in document["performance"]["warnings"])


def test_outputs_of_another_run_are_refused(tmp_path, digits):
    path = benchmark(tmp_path, digits, "one", RUN, num_threads=1, max_samples=20)
    np.save(path.parent / "one-outputs.npy", np.zeros((21, CLASSES), np.float32))
    with pytest.raises(MeasurementsError, match="different runs"):
        read_outputs(path)


def test_a_version_1_result_is_refused_with_a_sentence(tmp_path, digits):
    path = benchmark(tmp_path, digits, "old", RUN, num_threads=1, max_samples=20)
    document = json.loads(path.read_text())
    document["schema_version"] = 1
    path.write_text(json.dumps(document))
    with pytest.raises(MeasurementsError, match="schema version 1, this edge_ai_lib reads 2: rerun"):
        read_result(path)


# -- summaries and the report ---------------------------------------------------------------------

def test_summary_files_and_report_from_real_results(tmp_path, digits, capsys):
    full = benchmark(tmp_path, digits, "full", RUN, num_threads=1)
    seed = benchmark(tmp_path, digits, "seed", {"model": "tiny", "compiler": "onnxruntime", "board": "seed-board",
                                                "threads": 2}, seed_only=True)
    document = json.loads(seed.read_text())
    document["compiled_model"]["load_time_s"] = None  # a board that did not report its load time
    seed.write_text(json.dumps(document))
    report = tmp_path / "out" / "report.html"
    render_report([str(report), str(full), str(seed)])
    assert "2 runs" in capsys.readouterr().out

    summary = json.loads((report.parent / "summary.json").read_text())
    assert list(summary) == ["tiny/onnxruntime/memory-board/t1", "tiny/onnxruntime/seed-board/t2"]
    entry = summary["tiny/onnxruntime/memory-board/t1"]
    assert {"model", "compiler", "board", "threads", "accuracy", "latency_median_ms", "latency_p90_ms",
            "latency_p99_ms", "latency_mean_ms", "runtime_samples_per_second", "session_samples_per_second",
            "compiled_size_bytes", "load_time_ms", "cold_first_inference_ms", "protocol_overhead_median_ms",
            "sample_count", "dataset"} <= set(entry)
    assert all(value is None or isinstance(value, (int, float, str)) for value in entry.values())
    full_document = read_result(full)
    assert entry["runtime_samples_per_second"] == full_document["performance"]["statistics"]["samples_per_second"]
    assert entry["session_samples_per_second"] == full_document["session"]["samples_per_second"]
    assert entry["runtime_samples_per_second"] > entry["session_samples_per_second"] > 0
    assert entry["threads"] == 1 and entry["sample_count"] == 40 and entry["dataset"] == "DigitsDataset"
    assert entry["load_time_ms"] > 0
    assert summary["tiny/onnxruntime/seed-board/t2"]["load_time_ms"] is None

    with open(report.parent / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["run"] for row in rows] == list(summary)
    assert rows[1]["load_time_ms"] == "" and float(rows[0]["load_time_ms"]) == pytest.approx(entry["load_time_ms"])
    assert float(rows[0]["session_samples_per_second"]) == pytest.approx(entry["session_samples_per_second"])

    html = report.read_text()
    assert "samples/s, runtime only" in html and "samples/s, whole session (end to end)" in html
    seed_row = html.split('data-run="tiny/onnxruntime/seed-board/t2"')[1].split("</tr>")[0]
    cells = [re.sub(r"<[^>]*>", "", "<td" + cell).strip() for cell in seed_row.split("<td")[1:]]
    assert cells[:3] == ["tiny", "onnxruntime", "seed-board"]
    assert cells[15] == "—"  # load
    assert "0.0" not in cells[15]


def test_two_results_of_one_run_are_refused(tmp_path, digits):
    first = benchmark(tmp_path, digits, "a", RUN, num_threads=1, max_samples=20)
    second = benchmark(tmp_path, digits, "b", RUN, num_threads=1, max_samples=20)
    with pytest.raises(MeasurementsError, match="are both the run tiny/onnxruntime/memory-board/t1"):
        render_report([str(tmp_path / "report.html"), str(first), str(second)])
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "summary.json").exists()
