"""The Snakemake workflow, run for real on a tiny config in a copy of the workflow.

The tiny config's models live in a package of the test's own (testmodels/), so that editing "the
model's own source file" never touches the repository. The Pet dataset comes from a mirror on
127.0.0.1 serving the small archives of tests/pet_archive.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from conftest import REPO, chromium

pytestmark = pytest.mark.slow

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TINY_CONFIG = {
    "datasets": {"digits": {"class": "edge_ai_lib.datasets.digits.DigitsDataset"}},
    "models": {
        "keras-cnn": {"wrapper": "testmodels.tiny_keras.TinyKerasCNN", "framework": "keras", "dataset": "digits",
                      "training": {"batch_size": 32, "learning_rate": 0.001, "num_epochs": 1}},
        "pytorch-cnn": {"wrapper": "testmodels.tiny_torch.TinyTorchCNN", "framework": "pytorch",
                        "dataset": "digits",
                        "training": {"batch_size": 32, "learning_rate": 0.001, "num_epochs": 1}},
    },
    "compilers": {
        "tflite-float32": {"class": "edge_ai_lib.compilers.tflite.TFLiteCompiler",
                           "runtime": "edge_ai_lib.runtimes.tflite.TFLiteRuntime",
                           "target": "host", "args": {"target": "float32"}},
        "onnxruntime": {"class": "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler",
                        "runtime": "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime",
                        "target": "host"},
    },
    "boards": {"local": {"class": "edge_ai_lib.boards.local.LocalBoard", "architecture": "host"}},
    "benchmark": {"warmup": 2, "max_samples": 60},
}
RUNS = [(m, c) for m in TINY_CONFIG["models"] for c in TINY_CONFIG["compilers"]]


def snakemake(directory: Path, *arguments: str, cores: int = 2, check: bool = True,
              python: str | None = None) -> subprocess.CompletedProcess:
    """Snakemake in `directory` (its own testmodels/ importable); `python` runs it instead of ours."""
    env = {**os.environ, "PYTHONPATH": str(directory), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [python, "-m", "snakemake"] if python else [SNAKEMAKE]
    result = subprocess.run([*command, "--cores", str(cores), "results/report.html", *arguments], cwd=directory,
                            capture_output=True, text=True, env=env, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {arguments} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def planned_jobs(directory: Path, **options) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a dry run plans."""
    output = snakemake(directory, "--dry-run", **options).stdout
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        match = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not match:
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.MULTILINE)
        pairs = dict(item.split("=", 1) for item in wildcards.group(1).split(", ")) if wildcards else {}
        jobs.append((match.group(1), pairs))
    return jobs


def job_set(jobs):
    return sorted((rule, wildcards.get("model", ""), wildcards.get("compiler", "")) for rule, wildcards in jobs)


def chain(model: str) -> list[tuple[str, str, str]]:
    """The jobs one model's change must rerun: train, export, its framework reference, compile and benchmark
    per compiler, report."""
    jobs = [("train_model", model, ""), ("export_onnx", model, ""), ("evaluate_model", model, ""),
            ("render_report", "", "")]
    jobs += [(rule, model, compiler) for rule in ("compile_model", "benchmark_board")
             for compiler in TINY_CONFIG["compilers"]]
    return sorted(jobs)


def result_of(directory: Path, model: str, compiler: str, threads: int = 1) -> dict:
    return json.loads((directory / "results" / "benchmarks" / model / compiler / f"local-t{threads}.json").read_text())


def make_workflow(directory: Path, config: dict, modules: dict[str, str]) -> Path:
    """The workflow in `directory`, `config` as its default config, `modules` as its own testmodels package."""
    for name in ("Snakefile", "rules", "workflow", "profiles", "config"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, directory / name)
    (directory / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    package = directory / "testmodels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in modules.items():
        (package / f"{name}.py").write_text(text)
    return directory


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    directory = make_workflow(tmp_path_factory.mktemp("workflow"), TINY_CONFIG, {
        "tiny_keras": "from edge_ai_lib.modelwrappers.classification.tensorflow_digits import TensorFlowDigitsCNN\n\n\n"
                      "class TinyKerasCNN(TensorFlowDigitsCNN):\n    pass\n",
        "tiny_torch": "from edge_ai_lib.modelwrappers.classification.pytorch_digits import PyTorchDigitsCNN\n\n\n"
                      "class TinyTorchCNN(PyTorchDigitsCNN):\n    pass\n",
    })
    snakemake(directory)
    return directory


def test_cold_run_builds_every_run_and_the_report(workflow):
    assert (workflow / "results" / "report.html").stat().st_size > 10_000
    for model, compiler in RUNS:
        document = result_of(workflow, model, compiler)
        assert document["kind"] == "inference_client"
        assert document["dataset"]["evaluated_sample_count"] == 60
        # the config's thread count (1 by default), not the 2 cores Snakemake was given
        assert document["runtime"]["num_threads"] == 1
        assert {key: document["run"][key] for key in ("model", "compiler", "board", "threads")} == \
            {"model": model, "compiler": compiler, "board": "local", "threads": 1}
        assert document["quality"]["accuracy"] > 0.3
    assert (workflow / "results" / "logs" / "train_model" / "keras-cnn.keras.log").is_file()
    summary = json.loads((workflow / "results" / "summary.json").read_text())
    for model, compiler in RUNS:  # every variant held to its framework model, evaluated on the host
        reference = json.loads((workflow / "results" / "reference" / model / "framework.json").read_text())
        assert reference["reference"] == {"model": model} and reference["quality"]["sample_count"] == 60
        entry = summary[f"{model}/{compiler}/local/t1"]
        assert entry["reference_accuracy"] == reference["quality"]["accuracy"]
        assert entry["top1_agreement"] >= 0.9 and entry["max_output_error"] < 0.05


def test_noop_rerun_runs_nothing(workflow):
    result = snakemake(workflow)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_touching_config_and_sources_reruns_nothing(workflow):
    for path in (workflow / "config" / "config.yaml", workflow / "testmodels" / "tiny_keras.py",
                 workflow / "testmodels" / "tiny_torch.py"):
        os.utime(path)
    assert planned_jobs(workflow) == []


def test_another_python_reruns_nothing(workflow, tmp_path):
    """The interpreter is in no job's params: Snakemake run by a Python at another path (a second virtual
    environment with the same packages) finds nothing changed."""
    other = tmp_path / "other-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(other)], check=True, timeout=120)
    python = str(other / "bin" / "python3")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # our packages, .pth files included, as the new environment's own
    Path(purelib, "ours.pth").write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    assert subprocess.run([python, "-c", "import sys, snakemake, edge_ai_lib; print(sys.executable)"],
                          capture_output=True, text=True, check=True).stdout.strip() == python
    # (--list-params-changes cannot tell: Snakemake 9.27 lists every output there, changed or not)
    result = snakemake(workflow, "--dry-run", python=python)
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-3000:]


def test_a_clone_in_another_folder_plans_nothing_and_reruns_only_the_edited_model(workflow, tmp_path):
    """Results and .snakemake metadata copied elsewhere (as another checkout, or a CI cache) stay valid."""
    clone = tmp_path / "elsewhere" / "clone"
    shutil.copytree(workflow, clone, symlinks=True)
    result = snakemake(clone, "--dry-run")
    output = result.stdout + result.stderr
    assert "Nothing to be done" in output, output[-3000:]
    assert not re.search(r"metadata|provenance|missing", output, re.IGNORECASE), output[-3000:]
    config = yaml.safe_load((clone / "config" / "config.yaml").read_text())
    config["models"]["keras-cnn"]["training"]["batch_size"] = 16
    (clone / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert job_set(planned_jobs(clone)) == chain("keras-cnn")


def test_pytorch_config_change_reruns_only_the_pytorch_chain(workflow):
    config = yaml.safe_load((workflow / "config" / "config.yaml").read_text())
    config["models"]["pytorch-cnn"]["training"]["learning_rate"] = 0.002
    (workflow / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert job_set(planned_jobs(workflow)) == chain("pytorch-cnn")
    snakemake(workflow)
    assert planned_jobs(workflow) == []


def test_keras_source_edit_reruns_only_the_keras_chain(workflow):
    source = workflow / "testmodels" / "tiny_keras.py"
    source.write_text(source.read_text() + "\n# an edit of the model's own source\n")
    assert job_set(planned_jobs(workflow)) == chain("keras-cnn")
    snakemake(workflow)
    assert planned_jobs(workflow) == []


def test_benchmarks_on_one_board_never_overlap(workflow):
    """With more cores than benchmarks, the board's exclusivity must still serialise them."""
    snakemake(workflow, "--forcerun", "benchmark_board", cores=4)
    sessions = []
    for model, compiler in RUNS:
        document = result_of(workflow, model, compiler)
        sessions.append((document["session"]["started_unix"], document["session"]["ended_unix"]))
        assert document["runtime"]["num_threads"] == 1  # the config's, whatever --cores says
    sessions.sort()
    for (_, previous_end), (next_start, _) in zip(sessions, sessions[1:]):
        assert previous_end <= next_start


def test_two_workflows_never_share_the_board(workflow, tmp_path):
    """Two Snakemake processes (two clones of the workflow) benchmark at once: the board lock serialises them."""
    clone = tmp_path / "clone"
    shutil.copytree(workflow, clone, symlinks=True)
    locks = {"EDGE_AI_LOCK_DIR": str(tmp_path / "locks")}
    runs = [subprocess.Popen([SNAKEMAKE, "--cores", "2", "results/report.html", "--forcerun", "benchmark_board"],
                             cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "PYTHONPATH": str(directory), "TF_CPP_MIN_LOG_LEVEL": "3", **locks})
            for directory in (workflow, clone)]
    for run in runs:
        output, _ = run.communicate(timeout=900)
        assert run.returncode == 0, output[-4000:]
    sessions = []
    for directory in (workflow, clone):
        for model, compiler in RUNS:
            document = result_of(directory, model, compiler)
            sessions.append((document["session"]["started_unix"], document["session"]["ended_unix"]))
    sessions.sort()
    for (_, previous_end), (next_start, _) in zip(sessions, sessions[1:]):
        assert previous_end <= next_start


PET_MODEL = "edge_ai_lib.modelwrappers.classification.tensorflow_pet_dataset.TensorFlowPetDatasetMobileNetV2"


def test_the_pet_dataset_image_size_reaches_the_compiled_model(tmp_path):
    """The Pet dataset (tests/pet_archive.py's archives on a loopback mirror) at 96 px, MobileNetV2 trained
    one epoch and compiled to float32 TFLite: the compiled model takes 96x96 images."""
    from ai_edge_litert.interpreter import Interpreter
    from pet_archive import ArchiveServer, build_archives, md5

    archives = build_archives()
    # The official archives' names with these archives' own checksums: the download still checks them.
    dataset_module = (
        "from edge_ai_lib.datasets.download import RemoteFile\n"
        "from edge_ai_lib.datasets.pet_dataset import PET_ARCHIVES, PetDataset\n\n"
        f"CHECKSUMS = {({name: md5(data) for name, data in archives.items()})!r}\n\n\n"
        "class ServedPetDataset(PetDataset):\n"
        "    def __init__(self, root=None, **settings):\n"
        "        archives = [RemoteFile(a.url, CHECKSUMS[a.filename]) for a in PET_ARCHIVES]\n"
        "        super().__init__(root, archives, **settings)\n")
    with ArchiveServer(archives) as server:
        config = {
            "datasets": {"pets": {"class": "testmodels.pets.ServedPetDataset",
                                  "args": {"image_size": 96, "dataset_mirror": server.url}}},
            "models": {"mobilenetv2": {"wrapper": PET_MODEL, "framework": "keras", "dataset": "pets",
                                       "args": {"alpha": 0.35},
                                       "training": {"batch_size": 8, "learning_rate": 0.001, "num_epochs": 1}}},
            "compilers": {"tflite-float32": {"class": "edge_ai_lib.compilers.tflite.TFLiteCompiler",
                                             "runtime": "edge_ai_lib.runtimes.tflite.TFLiteRuntime",
                                             "target": "host", "args": {"target": "float32"}}},
            "boards": {"local": {"class": "edge_ai_lib.boards.local.LocalBoard", "architecture": "host"}},
        }
        directory = make_workflow(tmp_path, config, {"pets": dataset_module})
        compiled = "results/compiled/mobilenetv2/tflite-float32/model.tflite"
        # the compile job's output is its record beside the compiled model
        result = subprocess.run([SNAKEMAKE, "--cores", "2", compiled + ".json"], cwd=directory, capture_output=True,
                                text=True,
                                env={**os.environ, "PYTHONPATH": str(directory), "TF_CPP_MIN_LOG_LEVEL": "3"},
                                timeout=900)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert {name for name, _ in server.requests} == set(archives)
    interpreter = Interpreter(model_path=str(directory / compiled))
    (model_input,) = interpreter.get_input_details()
    assert list(model_input["shape"][1:]) == [96, 96, 3]


def test_report_renders_in_a_real_browser(workflow):
    """Headless Chromium (Debian's, driven by its chromedriver) opens the report file."""
    from selenium.webdriver.common.by import By

    with chromium() as driver:
        driver.get((workflow / "results" / "report.html").resolve().as_uri())
        assert driver.title == "edge-ai-tester report"
        rows = driver.find_elements(By.CSS_SELECTOR, "#summary tbody tr")
        assert len(rows) == len(RUNS)
        cells = {(row.find_elements(By.TAG_NAME, "td")[0].text, row.find_elements(By.TAG_NAME, "td")[1].text)
                 for row in rows}
        assert cells == set(RUNS)
        images = driver.find_elements(By.TAG_NAME, "img")
        # two summary plots, three per run, and the board's CPU and memory where it has 10 samples or more
        assert 2 + 3 * len(RUNS) <= len(images) <= 2 + 4 * len(RUNS)
        loaded = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        assert all(loaded)


def _dry_run_in_repo(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, "--dry-run", "--cores", "2", "results/report.html", *arguments], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.parametrize("example", sorted((REPO / "config" / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_examples_validate_and_dry_run(example):
    result = _dry_run_in_repo("--forceall", "--configfile", str(example))  # plan every job, whatever results/ holds
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "benchmark_board" in result.stdout
    if example.stem == "ssh-board":  # the SSH board plans its own benchmarks, beside the local board's
        assert "board=rpi4" in result.stdout, result.stdout[-3000:]


def test_invalid_config_names_the_key(tmp_path):
    config = json.loads(json.dumps(TINY_CONFIG))
    config["models"]["keras-cnn"]["training"]["learning_rate"] = "fast"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _dry_run_in_repo("--configfile", str(path))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "learning_rate" in text)
    assert f"{path}:{line}: models.keras-cnn.training.learning_rate: 'fast' is not of type 'number'" in output


def test_board_no_compiler_serves_is_refused(tmp_path):
    config = json.loads(json.dumps(TINY_CONFIG))
    config["boards"]["jetson"] = {"class": "edge_ai_lib.boards.local.LocalBoard", "architecture": "riscv64"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _dry_run_in_repo("--configfile", str(path))
    assert result.returncode != 0
    assert "boards.jetson.architecture: no compiler targets riscv64" in result.stdout + result.stderr


def test_parsing_the_workflow_imports_no_framework(tmp_path):
    """Stand-ins for TensorFlow, torch and TVM that fail on import: a dry run must not touch them."""
    for name in ("tensorflow", "torch", "tvm", "keras"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} imported while parsing')\n")
    result = _dry_run_in_repo(env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "imported while parsing" not in result.stdout + result.stderr


# Snakemake's lint asks every rule for a conda environment or a container. The rules run in the
# environment that runs Snakemake (conda cannot run where the tests run, so a conda: directive would be
# untested): that one lint is expected, any other fails.
NO_SOFTWARE_DEFINITION = "Specify a conda environment or container for each rule."


def test_lint_and_format_are_clean():
    lint = subprocess.run([SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    output = lint.stdout + lint.stderr
    assert "Traceback" not in output, output
    lints = set(re.findall(r"^ {4}\* (.*):$", output, re.MULTILINE))
    assert lints <= {NO_SOFTWARE_DEFINITION}, output
    if not lints:
        assert "Congratulations" in output, output
    snakefmt = str(Path(sys.executable).with_name("snakefmt"))
    formatted = subprocess.run([snakefmt, "--check", "Snakefile", "rules"], cwd=REPO, capture_output=True,
                               text=True, timeout=120)
    assert formatted.returncode == 0, formatted.stderr
