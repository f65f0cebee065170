"""DVC over the workflow: `dvc repro`, a shared remote (a local directory), a fresh clone that pulls.

A real git repository and a real DVC remote on disk, the tiny workflow of test_workflow.py run for
real: after `dvc pull` in a fresh clone (no .snakemake of its own, file times meaningless) neither
DVC nor Snakemake finds anything to do, and one model's edit reruns exactly that model's chain.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_workflow import TINY_CONFIG, chain, job_set, make_workflow, planned_jobs

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TINY_MODELS = {
    "tiny_keras": "from edge_ai_lib.modelwrappers.classification.tensorflow_digits import TensorFlowDigitsCNN\n\n\n"
                  "class TinyKerasCNN(TensorFlowDigitsCNN):\n    pass\n",
    "tiny_torch": "from edge_ai_lib.modelwrappers.classification.pytorch_digits import PyTorchDigitsCNN\n\n\n"
                  "class TinyTorchCNN(PyTorchDigitsCNN):\n    pass\n",
}


def run(directory: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(directory),
           "TF_CPP_MIN_LOG_LEVEL": "3", "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    result = subprocess.run(list(command), cwd=directory, capture_output=True, text=True, env=env, timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="module")
def remote_and_origin(tmp_path_factory):
    """The tiny workflow as a git repository with the project's DVC files, reproduced and pushed."""
    origin = make_workflow(tmp_path_factory.mktemp("origin"), TINY_CONFIG, TINY_MODELS)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, origin / name)
    (origin / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy(REPO / ".dvc" / name, origin / ".dvc" / name)
    # dvc.yaml depends on the library's sources: a copy of them stands in for the checkout's
    shutil.copytree(REPO / "edge_ai_lib", origin / "edge_ai_lib", ignore=shutil.ignore_patterns("__pycache__"))
    (origin / ".gitignore").write_text((REPO / ".gitignore").read_text())
    remote = tmp_path_factory.mktemp("remote")
    run(origin, "git", "init", "-q")
    run(origin, "git", "add", "-A")
    run(origin, "git", "commit", "-qm", "workflow")
    start = time.monotonic()
    run(origin, "dvc", "repro")
    cold = time.monotonic() - start
    run(origin, "dvc", "remote", "add", "--local", "-d", "shared", str(remote))
    run(origin, "dvc", "push")
    run(origin, "git", "add", "-A")
    run(origin, "git", "commit", "-qm", "results")
    print(f"\ncold `dvc repro` of the tiny workflow: {cold:.1f} s")
    return remote, origin


@pytest.fixture(scope="module")
def clone(remote_and_origin, tmp_path_factory):
    """A fresh clone elsewhere that pulled the artifacts (no .snakemake of its own before the pull)."""
    remote, origin = remote_and_origin
    directory = tmp_path_factory.mktemp("elsewhere") / "clone"
    run(origin.parent, "git", "clone", "-q", str(origin), str(directory))
    assert not (directory / ".snakemake").exists() and not (directory / "results").exists()
    run(directory, "dvc", "remote", "add", "--local", "-d", "shared", str(remote))
    start = time.monotonic()
    run(directory, "dvc", "pull")
    print(f"\n`dvc pull` in a fresh clone: {time.monotonic() - start:.1f} s")
    return directory


def test_analytics_are_off_in_the_committed_config():
    assert re.search(r"analytics\s*=\s*false", (REPO / ".dvc" / "config").read_text())


def test_a_fresh_clone_after_pull_has_nothing_to_do(clone):
    assert "Data and pipelines are up to date" in run(clone, "dvc", "status").stdout
    result = run(clone, str(BIN / "snakemake"), "--cores", "2", "--dry-run", "results/report.html")
    output = result.stdout + result.stderr
    assert "Nothing to be done" in output, output[-3000:]
    assert not re.search(r"missing provenance|metadata so that", output, re.IGNORECASE), output[-3000:]
    start = time.monotonic()
    repro = run(clone, "dvc", "repro")
    assert "didn't change, skipping" in repro.stdout, repro.stdout[-2000:]
    print(f"\n`dvc repro` with nothing to do: {time.monotonic() - start:.1f} s")


def test_metrics_and_plots_read_the_summary(clone, tmp_path):
    metrics = json.loads(run(clone, "dvc", "metrics", "show", "--json").stdout)
    summary = next(iter(metrics.values()))["data"]["results/summary.json"]["data"]
    runs = {f"{model}/{compiler}/local/t1" for model, compiler in
            [(m, c) for m in TINY_CONFIG["models"] for c in TINY_CONFIG["compilers"]]}
    assert set(summary) == runs
    for entry in summary.values():
        assert 0 <= entry["accuracy"] <= 1 and entry["latency_median_ms"] > 0
    out = tmp_path / "plots"
    run(clone, "dvc", "plots", "show", "--out", str(out))
    page = (out / "index.html").read_text()
    assert "latency_median_ms" in page and "accuracy" in page


def test_one_model_edited_in_the_clone_reruns_exactly_its_chain(clone):
    config_path = clone / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["models"]["pytorch-cnn"]["training"]["batch_size"] = 16
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert job_set(planned_jobs(clone)) == chain("pytorch-cnn")
    assert "models.pytorch-cnn.training.batch_size" in run(clone, "dvc", "params", "diff").stdout
    keras_model = clone / "results" / "models" / "keras-cnn" / "model.keras"
    before = keras_model.stat().st_mtime_ns
    start = time.monotonic()
    repro = run(clone, "dvc", "repro")
    print(f"\n`dvc repro` after one model's edit: {time.monotonic() - start:.1f} s")
    trained = re.findall(r"rule train_model:\n(?:.*\n){0,6}?\s+wildcards: model=([\w-]+)", repro.stdout + repro.stderr)
    assert trained == ["pytorch-cnn"], (repro.stdout + repro.stderr)[-4000:]
    assert keras_model.stat().st_mtime_ns == before  # DVC left the other outputs in place
    diff = json.loads(run(clone, "dvc", "metrics", "diff", "--json").stdout)
    changed = {key.split("/")[0] for key in diff.get("results/summary.json", {})}
    assert changed == {"pytorch-cnn"}, diff
    assert "Data and pipelines are up to date" in run(clone, "dvc", "status").stdout
