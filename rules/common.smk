# Helpers and input functions of the rules, and the checks of the config. Nothing here imports a
# deep-learning framework: classes are loaded only where their modules import none at their top.
import difflib
import hashlib
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

from edge_ai_lib.core.args import (
    find_class_source,
    find_module_source,
    load_class,
)
from edge_ai_lib.core.board import Board
from edge_ai_lib.core.compiler import ModelCompiler
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import ClassPathError, ConfigurationError
from edge_ai_lib.core.runtime import Runtime
from edge_ai_lib.modelwrappers.frameworks import FRAMEWORKS

DEFAULT_CONFIG = "config/config.yaml"
CONFIG_SCHEMA = "workflow/schemas/config.schema.yaml"
HOST_ARCHITECTURE = platform.machine()
# The interpreter a job runs, by name: the one running Snakemake comes first on the PATH (below), so
# its location is in no job's command or params, and a virtual environment elsewhere reruns nothing.
PYTHON = "python3"
# Options the rules set themselves, per role of a class: a config key for one of them is refused.
SET_BY_THE_WORKFLOW = {
    "dataset": {"dataset_root", "download_dataset"},
    "model": {"model_path"},
    "compiler": {"compiled_model_path", "architecture", "tuning_database"},
    "runtime": {"save_model_path"},
    "board": {"board_name", "architecture", "lock_timeout"},
}
# Runtime arguments whose list is a sweep: one benchmark per value, each checked as the runtime would.
SWEPT = {"num_threads"}


def put_this_interpreter_first_on_the_path():
    """Jobs run `python3 -m edge_ai_lib.scenarios...`: make that the Python that runs Snakemake."""
    directory = os.path.dirname(sys.executable)
    if shutil.which(PYTHON, path=directory) is None:
        sys.exit(
            f"{directory} holds no {PYTHON} beside {sys.executable}, so the jobs could not run this "
            "Python: run Snakemake from the virtual (or conda) environment where edge_ai_lib is installed"
        )
    os.environ.update(PATH=os.pathsep.join([directory, os.environ.get("PATH", "")]))


put_this_interpreter_first_on_the_path()


# -- the config: loading and checks -------------------------------------------------------------
def config_files():
    """The files the config came from, as the user named them (--configfile replaces the default)."""
    given = workflow.overwrite_configfiles or [DEFAULT_CONFIG]
    shown = []
    for path in map(str, given):
        relative = os.path.relpath(path)
        shown.append(path if relative.startswith("..") else relative)
    return shown


def refuse_config(problems):
    """Stop the workflow with one line per problem: `FILE[:LINE]: key.path: what is wrong and the fix`."""
    sys.exit(
        "\n".join(
            (
                f"{where(keys)}: {'.'.join(map(str, keys))}: {message}"
                if keys
                else f"{where(keys)}: {message}"
            )
            for keys, message in problems
        )
    )


def where(keys):
    """The file (and line) of the config that sets `keys`: the last file given that has them wins."""
    files = config_files()
    for path in reversed(files):
        try:
            node = yaml.compose(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                node = next(
                    (value for name, value in node.value if name.value == str(key)),
                    None,
                )
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(key, int)
                and key < len(node.value)
            ):
                node = node.value[key]
            else:
                node = None
            if node is None:
                break
        if node is not None:
            return f"{path}:{node.start_mark.line + 1}" if keys else path
    return " and ".join(files)


def check_config_syntax(path):
    """A config file that is neither JSON nor YAML stops here with its line and column.

    Snakemake's own message names neither the file nor the line. Files given with --configfile are read
    by Snakemake before this Snakefile runs, so this sees only the default one.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return  # Snakemake names a missing config file itself
    try:
        document = json.loads(text)
    except ValueError:
        try:
            document = yaml.safe_load(text)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            context = (
                f" ({error.context} that starts at line {error.context_mark.line + 1})"
                if error.context_mark
                else ""
            )
            sys.exit(
                f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {error.problem}{context}: "
                "fix the syntax there (indent with spaces, close every bracket and quote)"
            )
        except yaml.YAMLError as error:
            sys.exit(f"{path}: not valid YAML ({error}): fix the syntax")
    if not isinstance(document, dict):
        sys.exit(
            f"{path}: the config must be a mapping with datasets, models, compilers and boards at its "
            f"top, not {'an empty file' if document is None else type(document).__name__}: see "
            "config/examples/ for complete ones"
        )


def check_config(schema):
    """Validate the config against its schema, then what the schema cannot express; refuse it if wrong."""
    from snakemake.utils import validate

    path = Path(workflow.basedir) / schema
    try:
        validate(config, str(path))
    except WorkflowError:
        # Snakemake's message is the error as text: find it again to name its key and line.
        import jsonschema

        validator = jsonschema.Draft202012Validator(yaml.safe_load(path.read_text()))
        error = jsonschema.exceptions.best_match(validator.iter_errors(config))
        if error is None:
            raise
        refuse_config([(list(error.absolute_path), f"{error.message} (see {schema})")])
    problems = [*class_problems(), *matrix_problems()]
    if problems:
        refuse_config(problems)


def loaded_class(keys, path, base, problems):
    try:
        return load_class(path, base)
    except ClassPathError as error:
        problems.append((keys, str(error)))
    except Exception as error:  # the module itself fails to import
        problems.append(
            (
                keys,
                f"importing '{path}' failed ({type(error).__name__}: {error}): fix that module",
            )
        )
    return None


def argument_problems(keys, arguments, cls, role):
    """Config keys of `arguments` that `cls` does not declare, or whose values it would refuse."""
    reserved = SET_BY_THE_WORKFLOW[role]
    declared = cls.declared_arguments()
    known = [name for name in sorted(declared) if name not in reserved]
    problems = []
    for key, value in arguments.items():
        if key in reserved:
            problems.append(
                ([*keys, key], "set by the workflow itself for every job: remove it")
            )
        elif key not in declared:
            nearby = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            guess = f" (did you mean {nearby[0]}?)" if nearby else ""
            problems.append(
                (
                    [*keys, key],
                    f"{cls.__name__} has no argument '{key}'; known: "
                    f"{', '.join(known)}{guess}",
                )
            )
        else:
            swept = key in SWEPT and isinstance(value, list)
            try:
                for one in value if swept else [value]:
                    declared[key].convert(one, cls.__name__)
            except ConfigurationError as error:
                problems.append(([*keys, key], str(error)))
    for name, argument in declared.items():
        if argument.required and name not in reserved and name not in arguments:
            problems.append(
                (keys, f"{cls.__name__} needs its argument {name}: {argument.help}")
            )
    return problems


def class_problems():
    """Every class path the jobs will load, and the arguments given to them, checked before any job runs.

    Datasets, compilers and runtimes import their frameworks only inside their methods, so they are
    loaded here; model wrappers import theirs at the top of their modules, so only their source is
    found (their arguments are checked by the scenarios, which refuse unknown options).
    """
    problems = []
    for name, dataset in entries("datasets"):
        cls = loaded_class(
            ["datasets", name, "class"], dataset["class"], Dataset, problems
        )
        if cls is not None:
            problems += argument_problems(
                ["datasets", name, "args"], dataset["args"], cls, "dataset"
            )
    for name, model in entries("models"):
        try:
            find_class_source(model["wrapper"])
        except ClassPathError as error:
            problems.append((["models", name, "wrapper"], str(error)))
    runtimes = {}
    for name, compiler in entries("compilers"):
        cls = loaded_class(
            ["compilers", name, "class"], compiler["class"], ModelCompiler, problems
        )
        if cls is not None:
            problems += argument_problems(
                ["compilers", name, "args"], compiler["args"], cls, "compiler"
            )
        runtime = loaded_class(
            ["compilers", name, "runtime"], compiler["runtime"], Runtime, problems
        )
        if runtime is not None:
            runtimes.setdefault(architecture(compiler["target"]), {})[
                runtime.__name__
            ] = runtime
    for name, board in entries("boards"):
        cls = loaded_class(["boards", name, "class"], board["class"], Board, problems)
        if cls is not None:
            problems += argument_problems(
                ["boards", name, "args"], board["args"], cls, "board"
            )
        served = runtimes.get(architecture(board["architecture"]), {})
        for runtime in sorted(served.values(), key=lambda cls: cls.__name__):
            problems += argument_problems(
                ["boards", name, "runtime_args"],
                board["runtime_args"],
                runtime,
                "runtime",
            )
    # One line per key: the first runtime of a board that lacks it (keys are checked in name order).
    first = {}
    for keys, message in problems:
        first.setdefault(tuple(keys), (keys, message))
    return list(first.values())


def matrix_problems():
    """Cross-checks the schema cannot express; each names the key and the fix."""
    problems = []
    for name, model in entries("models"):
        if model["framework"] not in FRAMEWORKS:
            problems.append(
                (
                    ["models", name, "framework"],
                    f"'{model['framework']}' is not a framework of edge_ai_lib: use one of "
                    f"{', '.join(FRAMEWORKS)}",
                )
            )
        if model["dataset"] not in names("datasets"):
            problems.append(
                (
                    ["models", name, "dataset"],
                    f"'{model['dataset']}' is not a key of datasets: "
                    f"use one of {', '.join(names('datasets'))}",
                )
            )
    for name, compiler in entries("compilers"):
        for excluded in compiler["exclude_models"]:
            if excluded not in names("models"):
                problems.append(
                    (
                        ["compilers", name, "exclude_models"],
                        f"'{excluded}' is not a key of models",
                    )
                )
    targets = {architecture(c["target"]) for _, c in entries("compilers")}
    for name, board in entries("boards"):
        if architecture(board["architecture"]) not in targets:
            problems.append(
                (
                    ["boards", name, "architecture"],
                    f"no compiler targets {architecture(board['architecture'])} (compilers target "
                    f"{', '.join(sorted(targets))}): add a compiler with that target or remove the board",
                )
            )
    return problems


# -- the config, read through one accessor -------------------------------------------------------
OPTIONAL_KEYS = {
    "datasets": {"args": {}},
    "models": {"args": {}},
    "compilers": {"args": {}, "exclude_models": []},
    "boards": {"args": {}, "runtime_args": {}},
}


def entry(section, name):
    """One entry of the config (`entry("models", "keras-cnn")`), its optional keys filled in.

    Rules, input functions and checks read the config through this and `names`, `entries`,
    `benchmark_settings` and `thread_counts` only.
    """
    return {**OPTIONAL_KEYS[section], **config[section][name]}


def names(section):
    """The keys of a section, in the config's order."""
    return list(config[section])


def entries(section):
    """(name, entry) of every entry of a section, in the config's order."""
    return [(name, entry(section, name)) for name in names(section)]


def benchmark_settings():
    return {
        "warmup": 10,
        "max_samples": None,
        "board_lock_timeout": 600,
        **config.get("benchmark", {}),
    }


def thread_counts(board):
    """The runtime thread counts a board is benchmarked with: a list is a sweep; 1 unless configured."""
    threads = entry("boards", board)["runtime_args"].get("num_threads", 1)
    return threads if isinstance(threads, list) else [threads]


def framework(model):
    return FRAMEWORKS[entry("models", model)["framework"]]


def compiler_class(compiler):
    """Compiler classes import their frameworks inside their methods: loading one here is cheap."""
    return load_class(entry("compilers", compiler)["class"])


# -- the matrix ---------------------------------------------------------------------------------
def architecture(name):
    return HOST_ARCHITECTURE if name == "host" else name


def planned_runs():
    """(model, compiler, board, threads) of every benchmark: compilers that keep the model, boards they
    target, and each thread count of the board."""
    return [
        (model, compiler, board, threads)
        for model, _ in entries("models")
        for compiler, settings in entries("compilers")
        if model not in settings["exclude_models"]
        for board, board_settings in entries("boards")
        if architecture(settings["target"])
        == architecture(board_settings["architecture"])
        for threads in thread_counts(board)
    ]


# -- every file the workflow makes, named once: rules take these as outputs, input functions fill them
PATHS = {
    "dataset": "results/datasets/{dataset}",
    "dataset_summary": "results/datasets/{dataset}/summary.json",
    "model": "results/models/{model}/model.{extension}",
    "training_logs": "results/models/{model}/logs-{extension}",
    "training_summary": "results/models/{model}/logs-{extension}/training.json",
    "onnx": "results/models/{model}/model.onnx",
    "compiled": "results/compiled/{model}/{compiler}/model.{suffix}",
    # The compile job's output: the compilation's record beside the compiled model, or the failure of a
    # model the compiler cannot take (then there is no compiled model, and its runs are failed rows).
    "compilation": "results/compiled/{model}/{compiler}/model.{suffix}.json",
    "tuning": "results/tuning/{model}/{compiler}",
    "benchmark": "results/benchmarks/{model}/{compiler}/{board}-t{num_threads}.json",
    "received_model": "results/boards/{board}/received-model.{suffix}",
    # The framework model itself, evaluated on this host: the reference its compiled variants are held to.
    "reference": "results/reference/{model}/framework.json",
}
# Names in paths are config keys (the schema's pattern); the thread count is a positive integer.
NAME = yaml.safe_load(Path(workflow.basedir, CONFIG_SCHEMA).read_text())["definitions"][
    "key"
]["pattern"].strip("^$")


wildcard_constraints:
    dataset=NAME,
    model=NAME,
    compiler=NAME,
    board=NAME,
    num_threads="[1-9][0-9]*",
    extension="|".join(sorted(f.model_extension for f in FRAMEWORKS.values())),


def dataset_of(model):
    return entry("models", model)["dataset"]


def dataset_root(dataset):
    return PATHS["dataset"].format(dataset=dataset)


def dataset_summary(model):
    return PATHS["dataset_summary"].format(dataset=dataset_of(model))


def model_file(model):
    return PATHS["model"].format(
        model=model, extension=framework(model).model_extension
    )


def training_logs(model):
    return PATHS["training_logs"].format(
        model=model, extension=framework(model).model_extension
    )


def onnx_file(model):
    return PATHS["onnx"].format(model=model)


def compiled_suffix(compiler):
    return compiler_class(compiler).compiled_suffix.lstrip(".")


def compiled_file(model, compiler):
    return PATHS["compiled"].format(
        model=model, compiler=compiler, suffix=compiled_suffix(compiler)
    )


def compilation_record(model, compiler):
    return PATHS["compilation"].format(
        model=model, compiler=compiler, suffix=compiled_suffix(compiler)
    )


def tunes(compiler):
    """Whether the compiler tunes the model first, into a database that is a workflow output of its own."""
    return compiler_class(compiler).tunes(entry("compilers", compiler)["args"])


def tuning_database(model, compiler):
    return PATHS["tuning"].format(model=model, compiler=compiler)


def tuning_input(wildcards):
    """The tuning database a compilation reads, for compilers that tune (none for the others)."""
    if tunes(wildcards.compiler):
        return [tuning_database(wildcards.model, wildcards.compiler)]
    return []


def compiler_source(model, compiler):
    """The model's own file when the compiler reads its framework, else its ONNX export."""
    if (
        entry("models", model)["framework"]
        in compiler_class(compiler).accepted_frameworks
    ):
        return model_file(model)
    return onnx_file(model)


def benchmark_result(model, compiler, board, threads):
    return PATHS["benchmark"].format(
        model=model, compiler=compiler, board=board, num_threads=threads
    )


def benchmark_results():
    return [benchmark_result(*run) for run in planned_runs()]


def reference_result(model):
    return PATHS["reference"].format(model=model)


def reference_results():
    """The framework reference of every model that has a benchmarked variant."""
    return [
        reference_result(model)
        for model in dict.fromkeys(run[0] for run in planned_runs())
    ]


# -- settings as data: each job gets its classes and their arguments as one JSON spec ---------------
PROTOCOL = "edge_ai_lib.runtimeprotocols.network.NetworkProtocol"


def part(cls, arguments=None, **workflow_arguments):
    """One role of a spec: the class and its arguments (the config's, then those the workflow sets)."""
    return {"class": cls, "args": {**(arguments or {}), **workflow_arguments}}


def dataset_part(dataset):
    settings = entry("datasets", dataset)
    return part(
        settings["class"],
        settings["args"],
        dataset_root=dataset_root(dataset),
        download_dataset=False,
    )


def model_part(model):
    settings = entry("models", model)
    return part(settings["wrapper"], settings["args"], model_path=model_file(model))


def compiler_part(model, compiler):
    """The compiler's arguments; a compiler that declares `architecture` gets the entry's target, one that
    tunes gets its database's path."""
    settings = entry("compilers", compiler)
    declared = compiler_class(compiler).declared_arguments()
    workflow_arguments = {}
    if "architecture" in declared:
        workflow_arguments["architecture"] = settings["target"]
    if tunes(compiler):
        workflow_arguments["tuning_database"] = tuning_database(model, compiler)
    return part(
        settings["class"],
        settings["args"],
        compiled_model_path=compiled_file(model, compiler),
        **workflow_arguments,
    )


def runtime_part(compiler, board, threads):
    """The runtime's arguments: the board's runtime_args, with one of its thread counts."""
    return part(
        entry("compilers", compiler)["runtime"],
        entry("boards", board)["runtime_args"],
        num_threads=threads,
        save_model_path=PATHS["received_model"].format(
            board=board, suffix=compiled_suffix(compiler)
        ),
    )


def board_part(board):
    settings = entry("boards", board)
    return part(
        settings["class"],
        settings["args"],
        board_name=board,
        architecture=architecture(settings["architecture"]),
        lock_timeout=benchmark_settings()["board_lock_timeout"],
    )


def spec(**parts):
    """The JSON a scenario reads with --spec: its roles and its options."""
    return json.dumps(parts, sort_keys=True)


def scenario_command(scenario, redirect="> {log:q} 2>&1"):
    """A job's shell command: its scenario replaces the shell (exec), so a signal to the job reaches it."""
    return f"exec {PYTHON} -m edge_ai_lib.scenarios.{scenario} --spec {{params.spec:q}} {redirect}"


# -- the specs of the rules: functions of the wildcards only (Snakemake records params of nothing else)
def dataset_spec(wildcards):
    return spec(dataset=dataset_part(wildcards.dataset))


def training_spec(wildcards):
    model = wildcards.model
    return spec(
        model=model_part(model),
        dataset=dataset_part(dataset_of(model)),
        options={**entry("models", model)["training"], "logdir": training_logs(model)},
    )


def reference_spec(wildcards):
    """The framework model on this host, over the samples its variants' benchmarks measure."""
    model = wildcards.model
    result = Path(reference_result(model))
    return spec(
        model=model_part(model),
        dataset=dataset_part(dataset_of(model)),
        options={
            "output": str(result.parent),
            "reportname": result.stem,
            "warmup": benchmark_settings()["warmup"],
            "max_samples": benchmark_settings()["max_samples"],
            "reference": model,
        },
    )


def report_settings():
    """The config's `report` section with its defaults."""
    return {"accuracy_tolerance": 0.01, **config.get("report", {})}


def export_spec(wildcards):
    return spec(
        model=model_part(wildcards.model),
        options={"onnx_path": onnx_file(wildcards.model)},
    )


def compilation_spec(wildcards):
    model, compiler = wildcards.model, wildcards.compiler
    return spec(
        model=model_part(model),
        compiler=compiler_part(model, compiler),
        dataset=dataset_part(dataset_of(model)),
        options={"source_model": compiler_source(model, compiler)},
    )


def tuning_spec(wildcards):
    model, compiler = wildcards.model, wildcards.compiler
    return spec(
        model=model_part(model),
        compiler=compiler_part(model, compiler),
        dataset=dataset_part(dataset_of(model)),
        options={"source_model": compiler_source(model, compiler)},
    )


def benchmark_spec(wildcards):
    """The client's run: the runtime's thread count is the result path's, never Snakemake's threads."""
    model, compiler, board = wildcards.model, wildcards.compiler, wildcards.board
    threads = int(wildcards.num_threads)
    result = Path(benchmark_result(model, compiler, board, threads))
    return spec(
        model=model_part(model),
        compiler=compiler_part(model, compiler),
        protocol=part(PROTOCOL),
        runtime=runtime_part(compiler, board, threads),
        dataset=dataset_part(dataset_of(model)),
        board=board_part(board),
        options={
            "output": str(result.parent),
            "reportname": result.stem,
            "skip_compilation": True,
            "warmup": benchmark_settings()["warmup"],
            "max_samples": benchmark_settings()["max_samples"],
            "run": {
                "model": model,
                "compiler": compiler,
                "board": board,
                "threads": threads,
            },
        },
    )


# -- inputs, sources and resources ----------------------------------------------------------------
def file_hash(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_source_hash(wildcards):
    """Content hashes of the model's own source and of its framework module: an edit reruns the model."""
    model = wildcards.model
    return {
        "wrapper": file_hash(find_class_source(entry("models", model)["wrapper"])),
        "framework": file_hash(find_module_source(framework(model).module)),
    }


def is_local_board(board):
    from edge_ai_lib.boards.local import LocalBoard

    return issubclass(load_class(entry("boards", board)["class"]), LocalBoard)


def board_resources():
    """One exclusive resource per board: a job takes 1 of its own board's and 0 of the others'."""
    for name in names("boards"):
        if f"board_{name}" not in workflow.global_resources:
            workflow.register_resource(f"board_{name}", 1)
    return {
        f"board_{name}": (lambda wildcards, name=name: int(wildcards.board == name))
        for name in names("boards")
    }


def benchmark_threads(wildcards):
    """Cores a benchmark keeps for itself, for scheduling only (the runtime's threads are the config's):
    the local board is this host, so its benchmarks take every core and nothing runs beside them.
    """
    return workflow.cores if is_local_board(wildcards.board) else 1


# -- comparison with an earlier run (rules/compare.smk) -------------------------------------------
def comparison_settings():
    """The config's `comparison` section with its defaults; `baseline` always a list (empty: none)."""
    settings = {
        "baseline": None,
        "latency_threshold": 0.1,
        "accuracy_threshold": 0.01,
        "confidence": 0.95,
        **config.get("comparison", {}),
    }
    baseline = settings["baseline"]
    if baseline is None:
        baseline = []
    settings["baseline"] = [baseline] if isinstance(baseline, str) else list(baseline)
    return settings


def comparison_spec(wildcards):
    settings = comparison_settings()
    if not settings["baseline"]:
        raise WorkflowError(
            "results/comparison.json needs a baseline: give the earlier results with "
            "--config 'comparison={baseline: DIR}' (a copy of results/benchmarks made before the change)"
        )
    options = {
        **settings,
        "new": benchmark_results(),
        "json": "results/comparison.json",
    }
    return spec(options=options)


# -- the ONNX conversion grid (rules/onnx_grid.smk) ------------------------------------------------
ONNX_GRID_SOURCES = (
    "edge_ai_lib.core.onnxconversion",
    "edge_ai_lib.core.isolation",
    "edge_ai_lib.onnxconverters.pytorch",
    "edge_ai_lib.onnxconverters.tensorflow",
    "edge_ai_lib.onnxconverters.targets",
    "edge_ai_lib.modelwrappers.frameworks.pytorch",
    "edge_ai_lib.modelwrappers.frameworks.tensorflow",
    "edge_ai_lib.compilers.tflite",
    "edge_ai_lib.compilers.tvm",
    "edge_ai_lib.runtimes.onnxruntime",
    "edge_ai_lib.runtimes.tflite",
    "edge_ai_lib.runtimes.tvm",
)


def onnx_grid_settings():
    """The config's `onnx_grid` section with its defaults: the small grid unless `full`."""
    settings = {
        "full": False,
        "models": ["pytorch:mlp", "keras:depthwise"],
        "timeout": 600,
        "memory_limit_mb": 12288,
        **config.get("onnx_grid", {}),
    }
    settings["full"] = str(settings["full"]).lower() == "true"
    return settings


def onnx_grid_in_report():
    """The grid's JSON when the config has an `onnx_grid` section (the default config does): the report
    shows it; configs without the section build no grid."""
    return ["results/onnx/support-grid.json"] if "onnx_grid" in config else []


def onnx_grid_source_hash(wildcards):
    """Content hashes of the grid's models, converters, compilers and runtimes: an edit rebuilds the grid."""
    return {name: file_hash(find_module_source(name)) for name in ONNX_GRID_SOURCES}


def onnx_grid_spec(wildcards):
    settings = onnx_grid_settings()
    return spec(
        options={
            "onnx_models_dir": "results/onnx/models",
            "output": "results/onnx/support-grid.rst",
            "models": None if settings["full"] else settings["models"],
            "timeout": settings["timeout"],
            "memory_limit_mb": settings["memory_limit_mb"],
        }
    )
