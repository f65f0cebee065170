"""The report's verdict: the fastest variant, or the variants indistinguishable from it."""

from pathlib import Path

from edge_ai_lib.report import Run, fastest_verdicts


def run(compiler: str, median: float, low: float, high: float, model: str = "m", board: str = "b") -> Run:
    document = {"performance": {"statistics": {"median": median, "median_ci95": [low, high]}}}
    return Run(model, compiler, board, Path(f"{model}/{compiler}/{board}.json"), document)


def test_clear_winner():
    verdicts = fastest_verdicts([run("slow", 2.0, 1.9, 2.1), run("fast", 1.0, 0.9, 1.1)])
    assert verdicts[("m", "b")] == {"fastest": "fast", "tied": [], "count": 2}


def test_overlapping_intervals_are_indistinguishable():
    verdicts = fastest_verdicts([run("a", 1.00, 0.90, 1.10), run("b", 1.05, 1.08, 1.20), run("c", 3.0, 2.9, 3.1)])
    assert verdicts[("m", "b")] == {"fastest": "a", "tied": ["b"], "count": 3}


def test_groups_are_per_model_and_board():
    verdicts = fastest_verdicts([run("x", 1.0, 0.9, 1.1, board="b1"), run("y", 2.0, 1.9, 2.1, board="b2")])
    assert verdicts[("m", "b1")]["count"] == 1 and verdicts[("m", "b2")]["fastest"] == "y"


# -- the report built from real results -------------------------------------------------------------

import json  # noqa: E402
import re  # noqa: E402
from html import unescape  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import chromium  # noqa: E402
from test_comparison import slow_onnx_model  # noqa: E402
from test_run_identity import RUN, benchmark  # noqa: E402

from edge_ai_lib import decision  # noqa: E402
from edge_ai_lib.scenarios.render_report import main as render_report  # noqa: E402

SLOW_RUN = {**RUN, "compiler": "onnxruntime-heavy"}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A baseline and a new set of two real runs each (a light model and one with the same answers and
    more work), and the report of the new set against the baseline."""
    from edge_ai_lib.datasets.digits import DigitsDataset

    root = tmp_path_factory.mktemp("report")
    digits = DigitsDataset(root / "digits")
    sets = {}
    for side in ("base", "new"):
        light, heavy = root / side / "light", root / side / "heavy"
        heavy.mkdir(parents=True)
        slow_onnx_model(heavy / "tiny.onnx")
        benchmark(heavy, digits, "heavy", SLOW_RUN, num_threads=1, max_samples=120)
        light.mkdir()
        if side == "new":  # the light variant becomes the heavy one: a regression to find
            slow_onnx_model(light / "tiny.onnx")
        benchmark(light, digits, "light", RUN, num_threads=1, max_samples=120)
        sets[side] = [light / "results" / "light.json", heavy / "results" / "heavy.json"]
    page = root / "out" / "report.html"
    render_report([str(page), *map(str, sets["new"]), "--baseline", str(root / "base"),
                   "--latency-threshold", "1.0"])
    plain = root / "plain" / "report.html"
    render_report([str(plain), *map(str, sets["base"])])
    return {"compared": page, "plain": plain}


def test_the_recommendation_comes_first_and_names_the_fastest_accurate_variant(reports):
    html = reports["plain"].read_text()
    assert html.index('id="recommendations"') < html.index('id="summary"')
    (line,) = re.findall(r'<p class="recommendation"[^>]*>(.*?)</p>', html, re.S)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]*>", "", line))
    assert text.startswith("tiny on memory-board: onnxruntime") and "fastest (" in text
    assert "within 1 percentage points of the best variant's accuracy (onnxruntime, " in unescape(text)
    assert "no framework reference was given" in text
    assert "Weak evidence: accuracy" in text  # the tiny untrained model guesses: near chance
    assert re.search(r"Made \d{4}-\d\d-\d\d \d\d:\d\d UTC from commit", html)


def test_columns_take_the_unit_that_reads_well(reports):
    html = reports["plain"].read_text()
    assert "<th>median [µs]</th>" in html and "<th>dataset</th><th>samples</th>" in html
    assert decision.time_unit([0.0213, 0.5]) == ("µs", 1e3) and decision.time_unit([2.0]) == ("ms", 1.0)
    assert decision.format_in_unit(0.0213, 1e3) == "21.3"


def test_the_comparison_section_shows_the_slowed_run_unconfirmed_with_one_run_a_side(reports):
    html = reports["compared"].read_text()
    assert html.index('id="recommendations"') < html.index('id="comparison"') < html.index('id="summary"')
    assert re.findall(r'<tr class="regressed"', html) == []
    flagged = re.findall(r'<tr class="unconfirmed" data-run="([^"]+)"', html)
    assert flagged == ["tiny/onnxruntime/memory-board/t1"]
    row = html.split('<tr class="run')[1]
    assert "slower (1 run a side); unconfirmed" in row
    assert "the variation between runs is unmeasured" in html


def test_spread_warning_fires_on_spread_not_on_one_outlier():
    steady = [1.0] * 99 + [50.0]
    assert decision.spread_warnings(steady) == []
    spread = list(range(1, 101))
    (warning,) = decision.spread_warnings(spread)
    assert "interquartile range is 98% of the median" in warning  # (75.25 - 25.75) / 50.5


def open_in_chromium(page, screenshot=None):
    """Headless Chromium (Debian's, with its chromedriver) opens `page`; returns what a reader sees."""
    from selenium.webdriver.common.by import By

    with chromium() as driver:
        driver.get(page.resolve().as_uri())
        loaded = driver.execute_script("return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        first_heading = driver.find_elements(By.TAG_NAME, "h2")[0].text
        recommendation = driver.find_element(By.CSS_SELECTOR, "p.recommendation")
        seen = {"loaded": loaded, "first_heading": first_heading, "recommendation": recommendation.text,
                "recommendation_top": recommendation.location["y"], "title": driver.title}
        if screenshot is not None:
            driver.save_screenshot(str(screenshot))
        return seen


@pytest.mark.slow
def test_the_report_renders_in_chromium_recommendation_first(reports, tmp_path):
    seen = open_in_chromium(reports["compared"], tmp_path / "report.png")
    assert seen["title"] == "edge-ai-tester report"
    assert seen["loaded"] and all(seen["loaded"])
    assert seen["first_heading"] == "Recommendation"
    assert seen["recommendation_top"] < 400 and "tiny on memory-board:" in seen["recommendation"]
    assert (tmp_path / "report.png").stat().st_size > 10_000


# -- the framework model as every variant's reference -----------------------------------------------

def variant_result(directory: Path, wrapper, digits, onnx_path: Path, compiler: str, max_samples: int) -> Path:
    """A real benchmark of an ONNX variant of `wrapper`'s model (ONNX Runtime over the in-process board),
    written as inference_client writes it."""
    from protocol_helpers import MemoryBoard

    from edge_ai_lib.core.provenance import collect_provenance
    from edge_ai_lib.core.results import outputs_file_name
    from edge_ai_lib.plots import write_run_outputs
    from edge_ai_lib.scenarios.inference_client import run_session, session_document

    board = MemoryBoard(directory, num_threads=1)
    client = board.client()
    try:
        result = run_session(client, wrapper, digits, onnx_path.read_bytes(), warmup=2, max_samples=max_samples,
                             progress=False)
    finally:
        client.disconnect()
        board.close()
    run = {"model": "torch-cnn", "compiler": compiler, "board": "memory-board", "threads": 1}
    settings = {"compiler": {"class": "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler", "args": {}},
                "runtime": {"class": "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime", "args": {"num_threads": 1}},
                "protocol": {"class": "edge_ai_lib.runtimeprotocols.memory.MemoryProtocol", "args": {}},
                "board": None}
    compiled = {"compiler": settings["compiler"]["class"], "path": str(onnx_path),
                "size_bytes": onnx_path.stat().st_size}
    outputs_file = outputs_file_name(compiler)
    document = session_document(result, wrapper, digits, "validation", compiled, settings["runtime"]["class"],
                                collect_provenance({}), {"name": "memory"}, run, settings, outputs_file)
    path, _ = write_run_outputs(directory / "results", compiler, document, {outputs_file: result.outputs})
    return path


def noisy_copy(source: Path, destination: Path, scale: float) -> None:
    """The ONNX model with noise of `scale` times each weight's spread added: a variant that lost accuracy."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(source)
    rng = np.random.default_rng(1)
    for initializer in model.graph.initializer:
        weights = numpy_helper.to_array(initializer)
        if weights.dtype == np.float32 and weights.size > 16:
            noisy = weights + rng.normal(0.0, scale * float(weights.std()), weights.shape).astype(np.float32)
            initializer.CopyFrom(numpy_helper.from_array(noisy, initializer.name))
    onnx.save(model, destination)


@pytest.mark.slow
def test_every_variant_is_held_to_its_framework_model(trained_torch_digits, digits, tmp_path):
    """The framework model evaluated by the real scenario is the reference: a faithful ONNX export agrees on
    every sample with a tiny output error, a noisy one loses accuracy against it and is not recommended."""
    from conftest import DIGITS, TORCH_DIGITS

    from edge_ai_lib.scenarios.inference_performance import main as evaluate

    wrapper, _ = trained_torch_digits
    samples = 120
    evaluate([TORCH_DIGITS, DIGITS, str(tmp_path / "reference"), "framework", "--model-path", str(wrapper.model_path),
              "--dataset-root", str(digits.root), "--reference", "torch-cnn", "--max-samples", str(samples),
              "--warmup", "2"])
    reference = tmp_path / "reference" / "framework.json"
    assert json.loads(reference.read_text())["reference"] == {"model": "torch-cnn"}
    assert (tmp_path / "reference" / "framework-outputs.npy").is_file()
    exported, noisy = tmp_path / "float.onnx", tmp_path / "noisy.onnx"
    wrapper.save_to_onnx(exported)
    noisy_copy(exported, noisy, 1.5)
    results = [variant_result(tmp_path / name, wrapper, digits, path, name, samples)
               for name, path in (("onnx-float", exported), ("onnx-noisy", noisy))]
    page = tmp_path / "report.html"
    render_report([str(page), *map(str, results), "--references", str(reference), "--accuracy-tolerance", "0.02"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    faithful, lossy = summary["torch-cnn/onnx-float/memory-board/t1"], summary["torch-cnn/onnx-noisy/memory-board/t1"]
    assert faithful["top1_agreement"] == 1.0 and faithful["max_output_error"] < 1e-3
    assert faithful["accuracy_change_vs_framework"] == 0.0 and faithful["reference_accuracy"] >= 0.8
    assert lossy["accuracy_change_vs_framework"] < -0.02 and lossy["top1_agreement"] < 0.98
    assert lossy["max_output_error"] > 0.01
    html = page.read_text()
    (line,) = re.findall(r'<p class="recommendation"[^>]*>(.*?)</p>', html, re.S)
    text = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]*>", "", line)))
    assert text.startswith("torch-cnn on memory-board: onnx-float")
    assert "within 2 percentage points of the framework model's accuracy (pytorch PyTorchDigitsCNN, " in text
    assert "left out for lost accuracy: onnx-noisy (-" in text
    assert '<tr data-reference="torch-cnn">' in html and "<th>top-1 agreement with framework</th>" in html


def test_the_report_ends_with_the_onnx_grid_when_given_one(reports, tmp_path):
    """A grid as onnx_conversion writes it (one model through ONNX Runtime, its TVM import refused)."""
    grid = {
        "tolerance": {"atol": 1e-4, "rtol": 1e-3, "rule": "|a - b| <= atol + rtol * |b|"},
        "columns": [{"name": "export", "title": "export", "step": "export", "class_path": ""},
                    {"name": "onnxruntime", "title": "ONNX Runtime", "step": "run", "class_path": ""},
                    {"name": "tvm", "title": "TVM", "step": "run", "class_path": ""}],
        "rows": [{"framework": "pytorch", "model": "mlp", "description": "an MLP", "input_shape": [16],
                  "output_std": 0.5, "cells": {
                      "export": {"status": "ok", "message": "", "seconds": 1.0},
                      "onnxruntime": {"status": "passed", "message": "", "seconds": 0.1, "max_abs_error": 1e-7,
                                      "max_rel_error": 1e-6, "top1_agreement": 1.0, "within": True},
                      "tvm": {"status": "failed", "message": "ONNX operator Celu is not supported", "seconds": 2.0}}}],
        "counts": {"export": 1, "onnxruntime": 1, "tvm": 0, "ran": {"export": 1, "onnxruntime": 1, "tvm": 0},
                   "models": 1},
        "seconds": 3.1,
        "settings": {},
    }
    grid_path = tmp_path / "support-grid.json"
    grid_path.write_text(json.dumps(grid))
    results = sorted(str(p) for p in Path(reports["plain"]).parents[1].rglob("results/*.json") if "base" in str(p))
    page = tmp_path / "report.html"
    render_report([str(page), *results, "--onnx-grid", str(grid_path)])
    html = page.read_text()
    assert "ONNX conversion grid" in html and "Celu is not supported" in html and html.index("Recommendation") < \
        html.index("ONNX conversion grid")
    plain = Path(reports["plain"]).read_text()
    assert "ONNX conversion grid" not in plain


def test_a_run_on_an_emulated_board_is_marked_as_such(reports, tmp_path):
    results = sorted(p for p in Path(reports["plain"]).parents[1].rglob("results/*.json") if "base" in str(p))
    emulated = tmp_path / "emulated.json"
    document = json.loads(results[0].read_text())
    document["board"] = {**(document.get("board") or {}), "emulated": True}
    document["run"]["board"] = "emulated-arm64"
    emulated.write_text(json.dumps(document))
    page = tmp_path / "report.html"
    render_report([str(page), str(emulated), *map(str, results[1:])])
    html = page.read_text()
    assert html.count("emulated: timings are not arm hardware speed") >= 2  # the table's mark and the run's warning
    assert "emulated: timings" not in Path(reports["plain"]).read_text()


def test_a_tuned_run_says_how_it_was_tuned(reports, tmp_path):
    # The tuning record as TVMCompiler.describe() puts it in the compiled model's description (tests/test_tvm.py
    # tunes for real); here only how the report and the summary carry it.
    results = sorted(p for p in Path(reports["plain"]).parents[1].rglob("results/*.json") if "base" in str(p))
    tuned = tmp_path / "tuned.json"
    document = json.loads(results[0].read_text())
    document["compiled_model"]["tuning"] = {"trials": 98, "seconds": 118.6, "capped": True}
    tuned.write_text(json.dumps(document))
    page = tmp_path / "report.html"
    render_report([str(page), str(tuned), *map(str, results[1:])])
    assert "Tuned with 98 measured trials in 119 s, stopped by its time cap" in page.read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    tuning = sorted(((e["tuning_trials"], e["tuning_seconds"], e["tuning_capped"]) for e in summary.values()),
                    key=lambda values: values[0] is None)
    assert tuning == [(98, 118.6, True), (None, None, None)]
    assert "Tuned with" not in Path(reports["plain"]).read_text()
