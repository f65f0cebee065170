"""The cluster profiles (profiles/slurm, profiles/cluster-generic) and what runs where.

Fast checks: the profiles name only rules that exist, the Snakefile keeps dataset preparation, benchmarks
and the report local, and resources come from the profiles, not from the config. Slow: the small
config of test_slurm.py through the generic cluster executor with this host as the cluster
(profiles/cluster-generic/local_batch.py), whose job table shows what was submitted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_slurm import LOCAL_RULES, MODELS, SMALL_CONFIG, jobs_by_place
from test_workflow import make_workflow

BIN = Path(sys.executable).parent
CLUSTER_PROFILES = ("slurm", "cluster-generic")
# Everything but the Snakefile's localrules is submitted; the profiles size each of these.
SUBMITTED_RULES = {"train_model", "export_onnx", "tune_model", "compile_model", "evaluate_model",
                   "check_onnx_conversions"}


def rule_names() -> set[str]:
    return {name for path in (REPO / "rules").glob("*.smk")
            for name in re.findall(r"^rule (\w+):", path.read_text(), re.MULTILINE)} | {"all"}


def profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def localrules() -> set[str]:
    block = re.search(r"^localrules:\n((?:    .*\n)+)", (REPO / "Snakefile").read_text(), re.MULTILINE)
    return {name.strip() for name in block.group(1).replace("\n", ",").split(",") if name.strip()}


@pytest.mark.parametrize("name", CLUSTER_PROFILES)
def test_profiles_name_only_rules_of_the_workflow(name):
    settings = profile(name)
    for key in ("set-threads", "set-resources"):
        assert set(settings[key]) <= rule_names(), (key, set(settings[key]) - rule_names())
    assert SUBMITTED_RULES <= set(settings["set-threads"])
    # a rule's threads never exceed what Snakemake lets one job have
    assert max(settings["set-threads"].values()) <= settings["cores"]


@pytest.mark.parametrize("name", CLUSTER_PROFILES)
def test_cluster_profiles_leave_the_default_profile_to_apply(name):
    """profiles/default is the workflow profile, read with any --profile, key by key: a cluster profile
    that set one of its keys would replace it."""
    assert not set(profile("default")) & set(profile(name))


def test_what_runs_where():
    assert localrules() == LOCAL_RULES
    assert localrules() <= rule_names()
    assert not SUBMITTED_RULES & localrules()
    assert rule_names() == LOCAL_RULES | SUBMITTED_RULES, "a new rule: decide where it runs (Snakefile localrules)"


def test_resources_are_not_in_the_config():
    config = (REPO / "config" / "config.yaml").read_text()
    assert not re.search(r"^\s*(mem_mb|mem_mib|disk_mb|slurm_\w+|set-threads|set-resources|cpus_per_task):", config, re.MULTILINE)


def test_the_board_resource_is_declared_by_the_rule_and_kept_by_the_profiles():
    """Board exclusivity is the rule's own resource (rules/benchmark.smk); no profile overrides it."""
    assert "board_resources()" in (REPO / "rules" / "benchmark.smk").read_text()
    for name in CLUSTER_PROFILES:
        resources = profile(name).get("set-resources", {}).get("benchmark_board", {})
        assert not any(key.startswith("board_") for key in resources)


def test_local_batch_runs_reports_and_cancels_a_job(tmp_path):
    script = REPO / "profiles" / "cluster-generic" / "local_batch.py"

    def batch(*arguments):
        return subprocess.run([sys.executable, str(script), *arguments], cwd=tmp_path, capture_output=True,
                              text=True, check=True, timeout=30).stdout.strip()

    (tmp_path / "ok.sh").write_text("echo hello\n")
    (tmp_path / "bad.sh").write_text("exit 3\n")
    (tmp_path / "slow.sh").write_text("sleep 60\n")
    ok, bad, slow = (batch("submit", "--name", name, f"{name}.sh") for name in ("ok", "bad", "slow"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and {batch("status", ok), batch("status", bad)} & {"running"}:
        time.sleep(0.1)
    assert (batch("status", ok), batch("status", bad), batch("status", slow)) == ("success", "failed", "running")
    assert (tmp_path / ".snakemake" / "local-batch" / f"{ok}.log").read_text() == "hello\n"
    subprocess.run([str(script), slow], cwd=tmp_path, check=True, timeout=30)  # as Snakemake cancels: ids only
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and batch("status", slow) == "running":
        time.sleep(0.1)
    assert batch("status", slow) == "failed"
    table = (tmp_path / ".snakemake" / "local-batch" / "jobs.tsv").read_text().splitlines()
    assert [line.split("\t")[:2] for line in table] == [[ok, "ok"], [bad, "bad"], [slow, "slow"]]


@pytest.mark.slow
def test_the_generic_cluster_profile_submits_training_and_compilation_only(tmp_path):
    (tmp_path / "workflow").mkdir()
    directory = make_workflow(tmp_path / "workflow", SMALL_CONFIG, MODELS)
    cluster_jobs, local_jobs = jobs_by_place(directory)
    env = {**os.environ, "PYTHONPATH": str(directory), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([str(BIN / "snakemake"), "--profile", "profiles/cluster-generic", "results/report.html"],
                            cwd=directory, capture_output=True, text=True, env=env, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    state = directory / ".snakemake" / "local-batch"
    jobs = [line.split("\t") for line in (state / "jobs.tsv").read_text().splitlines()]
    assert sorted(job[1] for job in jobs) == sorted(cluster_jobs.elements())
    for job_id, rule, threads, *_ in jobs:
        assert (state / f"{job_id}.exit").read_text().strip() == "0"
        assert int(threads) == profile("cluster-generic")["set-threads"][rule]
        assert f"Finished jobid: 0 (Rule: {rule})" in (state / f"{job_id}.log").read_text()
    assert sorted(re.findall(r"^localrule (\w+):", output, re.MULTILINE)) == sorted(local_jobs.elements())
    # the host resource: no submitted job ran beside a benchmark on this host
    sessions = [(document["session"]["started_unix"], document["session"]["ended_unix"])
                for document in (json.loads(path.read_text())
                                 for path in (directory / "results" / "benchmarks").rglob("local-t1.json"))]
    for job_id, rule, _, _, _, submitted, _ in jobs:
        ended = (state / f"{job_id}.exit").stat().st_mtime
        for started, finished in sessions:
            assert ended <= started or float(submitted) >= finished, (rule, submitted, ended, started, finished)
