"""Config mistakes stop the dry run with one line each; config values reach the shell quoted; a job is
given the config's settings (threads included), never the host's; a killed job stops, cleans up, and
leaves nothing running.

Every test runs the real Snakemake (or a real scenario) in a copy of the workflow, as a user would.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import REPO

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CONFIG = {
    "datasets": {"digits": {"class": "edge_ai_lib.datasets.digits.DigitsDataset"}},
    "models": {
        "keras-cnn": {"wrapper": "edge_ai_lib.modelwrappers.classification.tensorflow_digits.TensorFlowDigitsCNN",
                      "framework": "keras", "dataset": "digits",
                      "training": {"batch_size": 32, "learning_rate": 0.001, "num_epochs": 1}},
    },
    "compilers": {
        "tflite-int8": {"class": "edge_ai_lib.compilers.tflite.TFLiteCompiler",
                        "runtime": "edge_ai_lib.runtimes.tflite.TFLiteRuntime",
                        "target": "host", "args": {"target": "int8"}},
        "onnxruntime": {"class": "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler",
                        "runtime": "edge_ai_lib.runtimes.onnxruntime.ONNXRuntime",
                        "target": "host"},
    },
    "boards": {"local": {"class": "edge_ai_lib.boards.local.LocalBoard", "architecture": "host"}},
}


def workflow_copy(directory: Path, config: dict | None = None) -> Path:
    """The workflow in `directory`/workflow, with `config` as its default config."""
    root = directory / "workflow"
    root.mkdir()
    for name in ("Snakefile", "rules", "workflow", "profiles", "config"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config or CONFIG, sort_keys=False))
    return root


def snakemake(directory: Path, *arguments: str, target: str = "results/report.html",
              cores: int = 1) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, "--cores", str(cores), target, *arguments], cwd=directory, capture_output=True,
                          text=True, timeout=300)


def refused(tmp_path: Path, change) -> tuple[str, Path]:
    """The output of a dry run of CONFIG changed by `change`, given with --configfile; it must fail cleanly."""
    config = copy.deepcopy(CONFIG)
    change(config)
    path = tmp_path / "mistake.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(workflow_copy(tmp_path), "--dry-run", "--configfile", str(path))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output and 'File "' not in output, output
    return output, path


def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# -- 1. config values reach the shell quoted -------------------------------------------------------
def test_a_shell_command_in_a_config_value_travels_as_data(tmp_path):
    config = copy.deepcopy(CONFIG)
    config["boards"]["local"]["args"] = {"log_path": "x; touch pwned"}
    directory = workflow_copy(tmp_path, config)
    result = snakemake(directory, "--dry-run", "--printshellcmds", "--forceall")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    commands = re.findall(r"^Shell command: (.*)$", result.stdout, re.MULTILINE)
    carrying = [command for command in commands if "touch pwned" in command]
    assert len(carrying) == 2  # the benchmarks of both compilers
    # one JSON spec, quoted as one shell word: the value is a string inside it
    assert all(re.search(r"--spec '\{[^']*\"log_path\": \"x; touch pwned\"[^']*\}' ", command) for command in carrying)
    assert not list(directory.rglob("pwned"))


def test_every_job_execs_its_scenario(tmp_path):
    """The scenario replaces the job's shell, so a signal to the job reaches the scenario itself."""
    result = snakemake(workflow_copy(tmp_path), "--dry-run", "--printshellcmds", "--forceall")
    commands = re.findall(r"^Shell command: (.*)$", result.stdout, re.MULTILINE)
    # prepare, train, export, evaluate the framework model, 2 x compile, 2 x benchmark, report
    assert len(commands) == 9, result.stdout[-3000:] + result.stderr[-3000:]
    assert all(command.startswith("exec ") for command in commands)


def test_a_job_passes_a_config_value_on_literally(tmp_path):
    """A real prepare_dataset job: the value reaches the scenario as it is written, nothing runs it."""
    config = copy.deepcopy(CONFIG)
    mirror = "http://127.0.0.1:9/$(touch pwned)`touch pwned2`"  # port 9 (discard) is closed: the download fails
    config["datasets"] = {"pets": {"class": PET_DATASET, "args": {"dataset_mirror": mirror}}}
    config["models"]["keras-cnn"]["dataset"] = "pets"
    directory = workflow_copy(tmp_path, config)
    result = snakemake(directory, target="results/datasets/pets/summary.json")
    assert result.returncode != 0
    assert not list(directory.rglob("pwned*"))
    log = (directory / "results" / "logs" / "prepare_dataset" / "pets.log").read_text()
    assert "127.0.0.1:9/$(touch pwned)`touch pwned2`/" in log, log


def planned_commands(directory: Path, *arguments: str, cores: int = 1) -> dict[str, list[str]]:
    """The shell commands a dry run prints (-p), by scenario: every job of the matrix is planned."""
    result = snakemake(directory, "--dry-run", "--printshellcmds", "--forceall", *arguments, cores=cores)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    commands: dict[str, list[str]] = {}
    for command in re.findall(r"^Shell command: (.*)$", result.stdout, re.MULTILINE):
        scenario = re.match(r"exec \S+ -m edge_ai_lib\.scenarios\.(\w+) ", command).group(1)
        commands.setdefault(scenario, []).append(command)
    return commands


def spec_of(command: str) -> dict:
    return json.loads(shlex.split(command)[shlex.split(command).index("--spec") + 1])


# -- 2. what a job is given: the config's settings, never the host's ---------------------------------
def test_the_benchmark_commands_are_the_same_whatever_the_cores(tmp_path):
    """The runtime's threads are part of the experiment: --cores schedules jobs, it changes no benchmark."""
    directory = workflow_copy(tmp_path)
    one, four = (planned_commands(directory, cores=cores)["inference_client"] for cores in (1, 4))
    assert sorted(one) == sorted(four) and len(one) == 2
    for command in one:
        spec = spec_of(command)
        compiler = spec["options"]["output"].rsplit("/", 1)[1]
        assert spec["runtime"]["args"]["num_threads"] == 1  # the default: runtime_args gives none
        assert spec["options"]["run"] == {"model": "keras-cnn", "compiler": compiler, "board": "local", "threads": 1}
        assert spec["options"]["reportname"] == "local-t1"


def test_a_thread_sweep_plans_one_benchmark_per_count(tmp_path):
    config = copy.deepcopy(CONFIG)
    config["boards"]["local"]["runtime_args"] = {"num_threads": [1, 2]}
    commands = planned_commands(workflow_copy(tmp_path, config))
    planned = set()
    for command in commands["inference_client"]:
        spec = spec_of(command)
        threads = spec["runtime"]["args"]["num_threads"]
        assert spec["options"]["run"]["threads"] == threads
        planned.add(f"{spec['options']['output']}/{spec['options']['reportname']}.json")
    assert planned == {f"results/benchmarks/keras-cnn/{compiler}/local-t{threads}.json"
                       for compiler in CONFIG["compilers"] for threads in (1, 2)}
    assert len(commands["inference_client"]) == 4
    (report,) = commands["render_report"]
    assert all(path in report for path in planned)


def test_dataset_arguments_reach_every_job_that_loads_the_dataset(tmp_path):
    config = copy.deepcopy(CONFIG)
    config["datasets"]["digits"]["args"] = {"split_seed": 7}
    commands = planned_commands(workflow_copy(tmp_path, config))
    loading = ["dataset_preparation", "model_training", "model_compilation", "inference_client"]
    for scenario in loading:
        for command in commands[scenario]:
            assert spec_of(command)["dataset"]["args"]["split_seed"] == 7, (scenario, command)
    assert sum(len(commands[scenario]) for scenario in loading) == 6


def test_no_command_names_the_interpreter_or_the_folder(tmp_path):
    """Jobs run `python3` from the PATH (the interpreter running Snakemake comes first on it) and paths
    relative to the workflow: nothing in a command changes with where Python or the workflow is."""
    directory = workflow_copy(tmp_path)
    commands = [command for scenario in planned_commands(directory).values() for command in scenario]
    assert len(commands) == 9 and all(command.startswith("exec python3 -m ") for command in commands)
    for command in commands:
        assert sys.executable not in command and str(Path(sys.executable).parent) not in command
        assert str(directory) not in command and str(REPO) not in command


@pytest.mark.parametrize("change, sentence", [
    (lambda c: c["boards"]["local"].update(runtime_args={"num_threads": [1, "two"]}),
     "boards.local.runtime_args.num_threads.1: 'two' is not of type 'integer'"),
    (lambda c: c["boards"]["local"].update(runtime_args={"num_threads": 0}),
     "boards.local.runtime_args.num_threads: 0 is less than the minimum of 1"),
    (lambda c: c["boards"]["local"].update(runtime_args={"num_threads": [2, 2]}),
     "boards.local.runtime_args.num_threads: [2, 2] has non-unique elements"),
    (lambda c: c["models"]["keras-cnn"].update(framework="tensorflow"),
     "models.keras-cnn.framework: 'tensorflow' is not a framework of edge_ai_lib: use one of keras, pytorch"),
    (lambda c: c["compilers"]["onnxruntime"].update(reads=["onnx"]),
     "compilers.onnxruntime: Additional properties are not allowed ('reads' was unexpected)"),
], ids=["sweep-item", "no-threads", "sweep-twice", "framework", "reads"])
def test_a_matrix_mistake_is_refused_at_the_dry_run(tmp_path, change, sentence):
    output, _ = refused(tmp_path, change)
    assert sentence in output


# -- 3. arguments a class does not have ------------------------------------------------------------
def test_a_misspelt_runtime_argument_is_refused_at_the_dry_run(tmp_path):
    output, path = refused(tmp_path, lambda c: c["boards"]["local"].update(runtime_args={"num_thread": 2}))
    assert (f"{path}:{line_of(path, 'num_thread')}: boards.local.runtime_args.num_thread: ONNXRuntime has no "
            "argument 'num_thread'; known: execution_providers, num_threads, resource_interval "
            "(did you mean num_threads?)") in output


@pytest.mark.parametrize("change, sentence", [
    (lambda c: c["compilers"]["tflite-int8"]["args"].update(inference_type="int8"),
     "compilers.tflite-int8.args.inference_type: TFLiteCompiler has no argument 'inference_type'; known: "
     "inference_input_type, inference_output_type, model_framework, representative_samples, target "
     "(did you mean inference_input_type?)"),
    (lambda c: c["datasets"]["digits"].update(args={"split_sed": 3}),
     "datasets.digits.args.split_sed: DigitsDataset has no argument 'split_sed'; known: inference_batch_size, "
     "split_seed, validation_fraction (did you mean split_seed?)"),
    (lambda c: c["datasets"]["digits"].update(args={"dataset_root": "elsewhere"}),
     "datasets.digits.args.dataset_root: set by the workflow itself for every job: remove it"),
], ids=["compiler", "dataset", "set-by-the-workflow"])
def test_an_unknown_class_argument_is_refused_at_the_dry_run(tmp_path, change, sentence):
    output, _ = refused(tmp_path, change)
    assert sentence in output


def test_a_scenario_refuses_an_abbreviated_option(tmp_path):
    """Model wrappers' arguments are checked by the scenarios: a prefix of an option is no longer taken for it."""
    result = subprocess.run([sys.executable, "-m", "edge_ai_lib.scenarios.dataset_preparation",
                             "edge_ai_lib.datasets.digits.DigitsDataset", "--dataset-roo", str(tmp_path / "digits")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: unrecognized option --dataset-roo (did you mean --dataset-root?); "
                                    "known options of DigitsDataset: --dataset-root, ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "digits").exists()


def test_class_parsers_take_no_abbreviations():
    from edge_ai_lib.runtimes.onnxruntime import ONNXRuntime

    parser = ONNXRuntime.form_argparse()[0]
    _, unknown = parser.parse_known_args(["--save-model-path", "m.onnx", "--num-thread", "2"])
    assert unknown == ["--num-thread", "2"]


# -- 4. one sentence instead of a traceback ---------------------------------------------------------
@pytest.mark.parametrize("section, name, key, value, sentence", [
    ("models", "keras-cnn", "wrapper", "edge_ai_lib.modelwrappers.clasification.tensorflow_digits.TensorFlowDigitsCNN",
     "cannot find module 'edge_ai_lib.modelwrappers.clasification' of "
     "'edge_ai_lib.modelwrappers.clasification.tensorflow_digits.TensorFlowDigitsCNN': did you mean "
     "edge_ai_lib.modelwrappers.classification?"),
    ("models", "keras-cnn", "wrapper", "edge_ai_lib.modelwrappers.classification.tensorflow_digits.TensorFlowDigitCNN",
     "cannot load 'edge_ai_lib.modelwrappers.classification.tensorflow_digits.TensorFlowDigitCNN': "
     "edge_ai_lib.modelwrappers.classification.tensorflow_digits has no class 'TensorFlowDigitCNN'; classes in "
     "edge_ai_lib.modelwrappers.classification.tensorflow_digits: TensorFlowDigitsCNN"),
    ("compilers", "onnxruntime", "runtime", "edge_ai_lib.runtimes.onnxruntime.ONNXRuntim",
     "cannot load 'edge_ai_lib.runtimes.onnxruntime.ONNXRuntim': edge_ai_lib.runtimes.onnxruntime has no class "
     "'ONNXRuntim'; classes in edge_ai_lib.runtimes.onnxruntime: ONNXRuntime"),
    ("compilers", "onnxruntime", "runtime", "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler",
     "'edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler' is a class but not a Runtime: pass a subclass of "
     "edge_ai_lib.core.runtime.Runtime"),
    ("compilers", "tflite-int8", "class", "edge_ai_lib.compilers.tflit.TFLiteCompiler",
     "cannot load 'edge_ai_lib.compilers.tflit.TFLiteCompiler': no module named 'edge_ai_lib.compilers.tflit'; "
     "modules nearby: edge_ai_lib.compilers.tflite"),
    ("datasets", "digits", "class", "edge_ai_lib.datasets.digits.DigitDataset",
     "cannot load 'edge_ai_lib.datasets.digits.DigitDataset': edge_ai_lib.datasets.digits has no class "
     "'DigitDataset'; classes in edge_ai_lib.datasets.digits: DigitsDataset"),
], ids=["wrapper-package", "wrapper-class", "runtime", "runtime-kind", "compiler", "dataset"])
def test_a_misspelt_class_path_is_one_sentence_at_the_dry_run(tmp_path, section, name, key, value, sentence):
    output, path = refused(tmp_path, lambda c: c[section][name].update({key: value}))
    assert f"{path}:{line_of(path, f'{key}: {value}')}: {section}.{name}.{key}: {sentence}" in output


def test_a_board_class_that_does_not_exist_is_refused_at_the_dry_run(tmp_path):
    board = {"class": "edge_ai_lib.boards.sh.SSHBoard", "architecture": "host", "args": {"ssh_host": "127.0.0.1"}}
    output, _ = refused(tmp_path, lambda c: c["boards"].update(lab=board))
    assert ("boards.lab.class: cannot load 'edge_ai_lib.boards.sh.SSHBoard': no module named "
            "'edge_ai_lib.boards.sh'; modules nearby: edge_ai_lib.boards.ssh") in output


def test_an_ssh_board_without_its_address_is_refused_at_the_dry_run(tmp_path):
    board = {"class": "edge_ai_lib.boards.ssh.SSHBoard", "architecture": "host", "args": {"user": "tester"}}
    output, _ = refused(tmp_path, lambda c: c["boards"].update(lab=board))
    assert "boards.lab.args: SSHBoard needs its argument ssh_host" in output


def test_a_board_argument_of_the_wrong_type_is_refused_at_the_dry_run(tmp_path):
    output, _ = refused(tmp_path, lambda c: c["boards"]["local"].update(args={"startup_timeout": "soon"}))
    assert "boards.local.args.startup_timeout: LocalBoard argument startup_timeout: expected a number, got 'soon'" \
        in output


@pytest.mark.parametrize("text, where, problem", [
    ("datasets:\n\tdigits: {}\n", "2:1", "found character '\\t' that cannot start any token"),
    ("datasets:\n  digits:\n    class: [a, b\nmodels: {}\n", "4:7",
     "expected ',' or ']', but got ':' (while parsing a flow sequence that starts at line 3)"),
], ids=["tab", "bracket"])
def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path, text, where, problem):
    directory = workflow_copy(tmp_path)
    (directory / "config" / "config.yaml").write_text(text)
    result = snakemake(directory, "--dry-run")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"config/config.yaml:{where}: not valid YAML: {problem}: fix the syntax there" in output
    assert "Traceback" not in output


def test_a_mistake_in_a_configfile_names_that_file(tmp_path):
    output, path = refused(tmp_path, lambda c: c["models"]["keras-cnn"].update(dataset="digts"))
    assert (f"{path}:{line_of(path, 'dataset: digts')}: models.keras-cnn.dataset: 'digts' is not a key of "
            "datasets: use one of digits") in output
    assert "config/config.yaml" not in output


def test_a_schema_mistake_names_the_file_line_and_key(tmp_path):
    output, path = refused(tmp_path, lambda c: c["models"]["keras-cnn"]["training"].update(learning_rate="fast"))
    assert (f"{path}:{line_of(path, 'learning_rate')}: models.keras-cnn.training.learning_rate: 'fast' is not of "
            "type 'number'") in output


# -- 5. a killed job leaves nothing running -----------------------------------------------------------
@pytest.fixture
def silent_mirror():
    """A dataset mirror on 127.0.0.1 that accepts connections and never answers: a download blocks on it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(60)
    yield server
    server.close()


PET_DATASET = "edge_ai_lib.datasets.pet_dataset.PetDataset"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_terminated_scenario_unwinds_and_says_so(tmp_path, silent_mirror, signum):
    mirror = f"http://127.0.0.1:{silent_mirror.getsockname()[1]}"
    command = (f"exec {sys.executable} -m edge_ai_lib.scenarios.dataset_preparation {PET_DATASET} "
               f"--dataset-root {tmp_path / 'pets'} --dataset-mirror {mirror}")
    # The scenario leaves a signal alone that its parent ignored (as under nohup, which keeps SIGHUP from
    # it by design): start it as an ordinary shell would, even when the test run itself is under nohup.
    process = subprocess.Popen(["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL))
    try:
        connection, _ = silent_mirror.accept()  # the scenario is now blocked in its download
        with connection:
            process.send_signal(signum)
            _, stderr = process.communicate(timeout=30)
    finally:
        _kill_group(process)
    assert process.returncode == 128 + signum
    assert stderr.strip().splitlines()[-1] == f"error: terminated by signal {signal.Signals(signum).name}"
    assert "Traceback" not in stderr


def _gone(process: psutil.Process, timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        pass
    return True


def test_a_scenario_dies_with_the_shell_that_started_it(tmp_path, silent_mirror):
    mirror = f"http://127.0.0.1:{silent_mirror.getsockname()[1]}"
    command = (f"{sys.executable} -m edge_ai_lib.scenarios.dataset_preparation {PET_DATASET} "
               f"--dataset-root {tmp_path / 'pets'} --dataset-mirror {mirror}; echo the shell goes on")
    shell = subprocess.Popen(["bash", "-c", command], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        connection, _ = silent_mirror.accept()  # the scenario is now blocked in its download
        with connection:
            (job,) = psutil.Process(shell.pid).children()
            shell.kill()  # SIGKILL: the shell can pass nothing on
            shell.wait(timeout=10)
            assert _gone(job, timeout=20), "the scenario outlived the shell that started it"
    finally:
        _kill_group(shell)
        shell.stdout.close()


def test_a_detached_board_server_outlives_the_shell_that_started_it(tmp_path):
    """On a board the server is started detached by an SSH shell that exits at once: it must stay up."""
    log = tmp_path / "server.log"
    command = (f"setsid nohup {sys.executable} -m edge_ai_lib.scenarios.inference_server "
               "edge_ai_lib.runtimeprotocols.network.NetworkProtocol edge_ai_lib.runtimes.onnxruntime.ONNXRuntime "
               f"--host 127.0.0.1 --port 0 --save-model-path {tmp_path / 'm.onnx'} >{log} 2>&1 </dev/null & echo $!")
    pid = int(subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30).stdout)
    server = psutil.Process(pid)
    try:
        deadline = time.monotonic() + 60
        while "listening on 127.0.0.1:" not in log.read_text():
            assert time.monotonic() < deadline and server.is_running(), log.read_text()
            time.sleep(0.05)
        time.sleep(0.5)
        assert server.is_running() and server.status() != psutil.STATUS_ZOMBIE
        port = int(log.read_text().split("listening on 127.0.0.1:")[1].split()[0])
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        server.terminate()
        server.wait(timeout=15)


def _kill_group(process: subprocess.Popen) -> None:
    """Whatever a test started in its own session, should the test fail half-way."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_a_killed_snakemake_takes_its_job_along(tmp_path, silent_mirror):
    """Snakemake dies without a word (SIGKILL) while a job blocks: the job stops too, and says why in its log."""
    config = copy.deepcopy(CONFIG)
    mirror = f"http://127.0.0.1:{silent_mirror.getsockname()[1]}"
    config["datasets"] = {"pets": {"class": PET_DATASET, "args": {"dataset_mirror": mirror}}}
    config["models"]["keras-cnn"]["dataset"] = "pets"
    directory = workflow_copy(tmp_path, config)
    run = subprocess.Popen([SNAKEMAKE, "--cores", "1", "results/datasets/pets/summary.json"], cwd=directory,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        connection, _ = silent_mirror.accept()
        with connection:
            (job,) = psutil.Process(run.pid).children()
            assert job.cmdline()[1:3] == ["-m", "edge_ai_lib.scenarios.dataset_preparation"]  # exec: no shell between
            run.kill()
            run.wait(timeout=10)
            assert _gone(job, timeout=20), "the job outlived Snakemake"
    finally:
        _kill_group(run)
    log = directory / "results" / "logs" / "prepare_dataset" / "pets.log"
    assert log.read_text().strip().splitlines()[-1] == "error: terminated by signal SIGTERM"
