"""The workflow on a real Slurm (tests/slurm.py) through `snakemake --profile profiles/slurm`.

A small config (two tiny models, one compiler, the local board) runs to the report through Snakemake's
Slurm executor plugin, and Slurm's own record of finished jobs (jobcomp/filetxt) shows that training,
ONNX export and compilation ran as Slurm jobs, with the profile's resources, and benchmarks did not.
With EDGE_AI_SLURM_COMPARE=1 the same config runs locally too, and both wall times are printed. Then
the artifacts go through a DVC remote: a fresh clone that pulled them submits nothing, and one
model's edit submits only its chain.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from slurm import NODE, slurm_cluster
from test_workflow import TINY_CONFIG, make_workflow, planned_jobs

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PROFILE = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
SMALL_CONFIG = copy.deepcopy(TINY_CONFIG)
SMALL_CONFIG["compilers"] = {"onnxruntime": TINY_CONFIG["compilers"]["onnxruntime"]}
MODELS = {
    "tiny_keras": "from edge_ai_lib.modelwrappers.classification.tensorflow_digits import TensorFlowDigitsCNN\n\n\n"
                  "class TinyKerasCNN(TensorFlowDigitsCNN):\n    pass\n",
    "tiny_torch": "from edge_ai_lib.modelwrappers.classification.pytorch_digits import PyTorchDigitsCNN\n\n\n"
                  "class TinyTorchCNN(PyTorchDigitsCNN):\n    pass\n",
}
# What the Snakefile keeps on the submitting node (its localrules); every other job goes to the cluster.
LOCAL_RULES = {"all", "prepare_dataset", "benchmark_board", "render_report", "compare_runs"}
# Site settings of this test cluster (no accounts, no sacct) and fast polling, on top of the profile.
SITE = ["--slurm-no-account", "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
        "--seconds-between-status-checks", "1", "--slurm-keep-successful-logs"]


def run(directory: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(directory),
           "TF_CPP_MIN_LOG_LEVEL": "3", "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("SLURM_CONF", None)
    result = subprocess.run(list(command), cwd=directory, capture_output=True, text=True, env=env, timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def on_slurm(directory: Path) -> subprocess.CompletedProcess:
    return run(directory, str(BIN / "snakemake"), "--profile", "profiles/slurm", *SITE, "results/report.html")


def submissions(output: str) -> dict[str, str]:
    """Slurm job id -> rule, from the executor's log of what it submitted."""
    return dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", output))


def run_records(cluster, output: str) -> list[dict[str, str]]:
    """Slurm's records of the jobs of the run that printed `output` (the job name is the run's id)."""
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    return [record for record in cluster.completed_jobs() if record["Name"] == run_id]


def sessions_never_overlap(directory: Path) -> None:
    sessions = sorted((document["session"]["started_unix"], document["session"]["ended_unix"])
                      for document in map(lambda path: json.loads(path.read_text()),
                                          (directory / "results" / "benchmarks").rglob("local-t1.json")))
    assert len(sessions) == len(SMALL_CONFIG["models"])
    for (_, previous_end), (next_start, _) in zip(sessions, sessions[1:]):
        assert next_start >= previous_end


@pytest.fixture(scope="module")
def cluster():
    """Declared as big as the profile's largest request, as a real node would be (Slurm refuses more)."""
    cpus = max(os.cpu_count() or 1, *PROFILE["set-threads"].values())
    memory_mb = max(resources["mem_mb"] for resources in PROFILE["set-resources"].values())
    with slurm_cluster(cpus=cpus, memory_mb=memory_mb) as running:
        yield running
    assert all(process.poll() is not None for process in running.processes.values())


def jobs_by_place(directory: Path) -> tuple[Counter, Counter]:
    """(jobs for the cluster, jobs for this node) by rule, as a dry run plans them."""
    rules = [rule for rule, _ in planned_jobs(directory)]
    return (Counter(rule for rule in rules if rule not in LOCAL_RULES),
            Counter(rule for rule in rules if rule in LOCAL_RULES))


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The small config on Slurm; (workflow directory, Snakemake's output, planned jobs).

    With EDGE_AI_SLURM_COMPARE=1 the same config also runs locally first and both wall times are printed
    (a measurement for the notes, left out of `make test` to keep it short).
    """
    local_seconds = None
    if os.environ.get("EDGE_AI_SLURM_COMPARE") == "1":
        local = make_workflow(tmp_path_factory.mktemp("local"), SMALL_CONFIG, MODELS)
        start = time.monotonic()
        run(local, str(BIN / "snakemake"), "--cores", "2", "results/report.html")
        local_seconds = time.monotonic() - start

    directory = make_workflow(tmp_path_factory.mktemp("on-slurm"), SMALL_CONFIG, MODELS)
    planned = jobs_by_place(directory)
    assert planned[0]["train_model"] == 2 and planned[1]["benchmark_board"] == 2, planned
    start = time.monotonic()
    result = on_slurm(directory)
    slurm_seconds = time.monotonic() - start
    print(f"\nthe small config ({sum(planned[0].values())} cluster jobs, {sum(planned[1].values())} local ones): "
          f"on Slurm {slurm_seconds:.1f} s"
          + (f", locally (--cores 2) {local_seconds:.1f} s" if local_seconds is not None else ""))
    return directory, result.stdout + result.stderr, planned


def test_training_and_compilation_ran_as_slurm_jobs_and_benchmarks_did_not(cluster, slurm_run):
    directory, output, (cluster_jobs, local_jobs) = slurm_run
    assert (directory / "results" / "report.html").stat().st_size > 10_000
    submitted = submissions(output)
    assert Counter(submitted.values()) == cluster_jobs, output[-4000:]
    records = run_records(cluster, output)
    # Slurm's own record: exactly the submitted jobs, all completed on the node, nothing else of the run
    assert sorted(record["JobId"] for record in records) == sorted(submitted), cluster.jobcomp.read_text()
    for record in records:
        assert (record["JobState"], record["NodeList"]) == ("COMPLETED", NODE), record
        rule = submitted[record["JobId"]]
        # ... with the profile's resources: threads as CPUs, mem_mb, runtime (minutes)
        assert int(record["ProcCnt"]) == PROFILE["set-threads"][rule], record
        assert f"mem={PROFILE['set-resources'][rule]['mem_mb']}M" in record["Tres"], record
        assert int(record["TimeLimit"]) == PROFILE["set-resources"][rule]["runtime"], record
        # the job's output file, written by Slurm, shows the rule Snakemake ran inside it
        slurm_output = next((directory / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob(f"{record['JobId']}.log"))
        assert re.search(rf"^rule {rule}:", slurm_output.read_text(), re.MULTILINE)
    # the local rules ran here, by Snakemake itself: every benchmark, one at a time on the board
    assert Counter(re.findall(r"^localrule (\w+):", output, re.MULTILINE)) == local_jobs, output[-4000:]
    assert not LOCAL_RULES & set(submitted.values())
    sessions_never_overlap(directory)


def test_a_rerun_on_slurm_submits_nothing(cluster, slurm_run):
    directory, _, _ = slurm_run
    before = len(cluster.completed_jobs())
    result = on_slurm(directory)
    output = result.stdout + result.stderr
    assert "Nothing to be done" in output, output[-3000:]
    assert len(cluster.completed_jobs()) == before


def test_artifacts_from_the_dvc_remote_are_not_rebuilt_on_slurm(cluster, slurm_run, tmp_path):
    """The Slurm run's artifacts pushed to a DVC remote; a fresh clone that pulls them submits no job, and
    after one model's edit only that model's train, export and compile go to Slurm."""
    directory, _, _ = slurm_run
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, directory / name)
    (directory / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy(REPO / ".dvc" / name, directory / ".dvc" / name)
    shutil.copytree(REPO / "edge_ai_lib", directory / "edge_ai_lib", ignore=shutil.ignore_patterns("__pycache__"))
    for optional in ("tuning", "reference", "onnx"):  # made by dvc.yaml's command when a step is not configured
        (directory / "results" / optional).mkdir(exist_ok=True)
    remote = tmp_path / "remote"
    run(directory, "git", "init", "-q")
    run(directory, "dvc", "commit", "--force", "--quiet")  # record what Slurm built, as `dvc repro` would
    run(directory, "dvc", "remote", "add", "--local", "-d", "shared", str(remote))
    run(directory, "dvc", "push", "--quiet")
    run(directory, "git", "add", "-A")
    run(directory, "git", "commit", "-qm", "results built on Slurm")

    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(directory), str(clone))
    run(clone, "dvc", "remote", "add", "--local", "-d", "shared", str(remote))
    run(clone, "dvc", "pull", "--quiet")
    # every kind of result came through the remote (logs and the boards' scratch files are not shared)
    kinds = {path.name for path in (directory / "results").iterdir() if path.name not in {"logs", "boards"}}
    missing = sorted(kind for kind in kinds if not (clone / "results" / kind).exists())
    assert not missing, f"results/{missing} did not come through the DVC remote: add them to dvc.yaml's outs"
    before = len(cluster.completed_jobs())
    result = on_slurm(clone)
    assert "Nothing to be done" in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]
    assert len(cluster.completed_jobs()) == before

    config_path = clone / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["models"]["pytorch-cnn"]["training"]["batch_size"] = 16
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    planned = [(rule, wildcards) for rule, wildcards in planned_jobs(clone) if rule not in LOCAL_RULES]
    assert {wildcards["model"] for _, wildcards in planned} == {"pytorch-cnn"}
    assert {"train_model", "export_onnx", "compile_model"} <= {rule for rule, _ in planned}
    result = on_slurm(clone)
    output = result.stdout + result.stderr
    submitted = submissions(output)
    assert Counter(submitted.values()) == Counter(rule for rule, _ in planned), output[-4000:]
    assert {record["JobId"] for record in run_records(cluster, output)} == set(submitted)
    assert re.findall(r"wildcards: model=([\w-]+), extension", output) == ["pytorch-cnn"], output[-4000:]
