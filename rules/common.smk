# Helpers and input functions of the rules, and the checks of the config. Nothing here imports a
# deep-learning framework: classes are loaded only where their modules import none at their top.
import difflib
import hashlib
import json
import os
import platform
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

PYTHON = sys.executable
DEFAULT_CONFIG = "config/config.yaml"
HOST_ARCHITECTURE = platform.machine()
MODEL_EXTENSIONS = {"keras": "keras", "pytorch": "pt"}
FRAMEWORK_MODULES = {
    "keras": "edge_ai_lib.modelwrappers.frameworks.tensorflow",
    "pytorch": "edge_ai_lib.modelwrappers.frameworks.pytorch",
}
# Options the rules set themselves, per role of a class: a config key for one of them is refused.
SET_BY_THE_WORKFLOW = {
    "dataset": {"dataset_root", "download_dataset"},
    "model": {"model_path"},
    "compiler": {"compiled_model_path"},
    "runtime": {"save_model_path"},
    "board": {"board_name", "architecture", "lock_timeout"},
}


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
    for key, value in (arguments or {}).items():
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
            try:
                declared[key].convert(value, cls.__name__)
            except ConfigurationError as error:
                problems.append(([*keys, key], str(error)))
    return problems


def class_problems():
    """Every class path the jobs will load, and the arguments given to them, checked before any job runs.

    Datasets, compilers and runtimes import their frameworks only inside their methods, so they are
    loaded here; model wrappers import theirs at the top of their modules, so only their source is
    found (their arguments are checked by the scenarios, which refuse unknown options).
    """
    problems = []
    for name, dataset in config["datasets"].items():
        cls = loaded_class(
            ["datasets", name, "class"], dataset["class"], Dataset, problems
        )
        if cls is not None:
            problems += argument_problems(
                ["datasets", name, "args"], dataset.get("args"), cls, "dataset"
            )
    for name, model in config["models"].items():
        try:
            find_class_source(model["wrapper"])
        except ClassPathError as error:
            problems.append((["models", name, "wrapper"], str(error)))
    runtimes = {}
    for name, compiler in config["compilers"].items():
        cls = loaded_class(
            ["compilers", name, "class"], compiler["class"], ModelCompiler, problems
        )
        if cls is not None:
            problems += argument_problems(
                ["compilers", name, "args"], compiler.get("args"), cls, "compiler"
            )
        runtime = loaded_class(
            ["compilers", name, "runtime"], compiler["runtime"], Runtime, problems
        )
        if runtime is not None:
            runtimes.setdefault(architecture(compiler["target"]), {})[
                runtime.__name__
            ] = runtime
    for name, board in config["boards"].items():
        cls = loaded_class(["boards", name, "class"], board["class"], Board, problems)
        if cls is not None:
            problems += argument_problems(
                ["boards", name, "args"], board.get("args"), cls, "board"
            )
        served = runtimes.get(architecture(board["architecture"]), {})
        for runtime in sorted(served.values(), key=lambda cls: cls.__name__):
            problems += argument_problems(
                ["boards", name, "runtime_args"],
                board.get("runtime_args"),
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
    for name, model in config["models"].items():
        if model["dataset"] not in config["datasets"]:
            problems.append(
                (
                    ["models", name, "dataset"],
                    f"'{model['dataset']}' is not a key of datasets: "
                    f"use one of {', '.join(config['datasets'])}",
                )
            )
    for name, compiler in config["compilers"].items():
        for excluded in compiler.get("exclude_models", []):
            if excluded not in config["models"]:
                problems.append(
                    (
                        ["compilers", name, "exclude_models"],
                        f"'{excluded}' is not a key of models",
                    )
                )
    targets = {architecture(c["target"]) for c in config["compilers"].values()}
    for name, board in config["boards"].items():
        if architecture(board["architecture"]) not in targets:
            problems.append(
                (
                    ["boards", name, "architecture"],
                    f"no compiler targets {architecture(board['architecture'])} (compilers target "
                    f"{', '.join(sorted(targets))}): add a compiler with that target or remove the board",
                )
            )
    return problems


# -- the matrix ---------------------------------------------------------------------------------
def architecture(name):
    return HOST_ARCHITECTURE if name == "host" else name


def planned_runs():
    """(model, compiler, board) of every benchmark: compilers that keep the model, boards they target."""
    return [
        (model, compiler, board)
        for model in config["models"]
        for compiler, settings in config["compilers"].items()
        if model not in settings.get("exclude_models", [])
        for board, board_settings in config["boards"].items()
        if architecture(settings["target"])
        == architecture(board_settings["architecture"])
    ]


def benchmark_results():
    return [f"results/benchmarks/{m}/{c}/{b}.json" for m, c, b in planned_runs()]


def benchmark_settings():
    return {
        "warmup": 10,
        "max_samples": None,
        "board_lock_timeout": 600,
        **config.get("benchmark", {}),
    }


# -- settings as data: each job gets its classes and their arguments as one JSON spec ---------------
PROTOCOL = "edge_ai_lib.runtimeprotocols.network.NetworkProtocol"


def part(cls, arguments=None, **workflow_arguments):
    """One role of a spec: the class and its arguments (the config's, then those the workflow sets)."""
    return {"class": cls, "args": {**(arguments or {}), **workflow_arguments}}


def dataset_part(dataset):
    settings = config["datasets"][dataset]
    return part(
        settings["class"],
        settings.get("args"),
        dataset_root=f"results/datasets/{dataset}",
        download_dataset=False,
    )


def model_part(model, model_path):
    settings = config["models"][model]
    return part(settings["wrapper"], settings.get("args"), model_path=str(model_path))


def compiler_part(compiler, compiled_model_path):
    settings = config["compilers"][compiler]
    return part(
        settings["class"],
        settings.get("args"),
        compiled_model_path=str(compiled_model_path),
    )


def runtime_part(compiler, board, threads):
    """The runtime's arguments: the board's runtime_args; a local board's thread count is the job's."""
    arguments = dict(config["boards"][board].get("runtime_args") or {})
    if is_local_board(board):
        arguments.setdefault("num_threads", threads)
    return part(
        config["compilers"][compiler]["runtime"],
        arguments,
        save_model_path=f"results/boards/{board}/received-model.{compiled_suffix(compiler)}",
    )


def board_part(board):
    settings = config["boards"][board]
    return part(
        settings["class"],
        settings.get("args"),
        board_name=board,
        architecture=architecture(settings["architecture"]),
        lock_timeout=benchmark_settings()["board_lock_timeout"],
    )


def spec(**parts):
    """The JSON a scenario reads with --spec: its roles and its options."""
    return json.dumps(parts, sort_keys=True)


def is_local_board(board):
    from edge_ai_lib.boards.local import LocalBoard

    return issubclass(load_class(config["boards"][board]["class"]), LocalBoard)


# -- inputs and parameters ----------------------------------------------------------------------
def file_hash(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_source_hash(model):
    """Content hashes of the model's own source and of its framework module: an edit reruns the model."""
    settings = config["models"][model]
    return {
        "wrapper": file_hash(find_class_source(settings["wrapper"])),
        "framework": file_hash(
            find_module_source(FRAMEWORK_MODULES[settings["framework"]])
        ),
    }


def dataset_of(model):
    return config["models"][model]["dataset"]


def dataset_summary(model):
    return f"results/datasets/{dataset_of(model)}/summary.json"


def model_file(model):
    return f"results/models/{model}/model.{MODEL_EXTENSIONS[config['models'][model]['framework']]}"


def onnx_file(model):
    return f"results/models/{model}/model.onnx"


def compiled_suffix(compiler):
    return load_class(config["compilers"][compiler]["class"]).compiled_suffix.lstrip(
        "."
    )


def compiled_file(model, compiler):
    return f"results/compiled/{model}/{compiler}/model.{compiled_suffix(compiler)}"


def compiler_source(model, compiler):
    """The model's own file when the compiler reads its framework, else its ONNX export."""
    if config["models"][model]["framework"] in config["compilers"][compiler]["reads"]:
        return model_file(model)
    return onnx_file(model)


def board_resources():
    """One exclusive resource per board: a job takes 1 of its own board's and 0 of the others'."""
    for name in config["boards"]:
        if f"board_{name}" not in workflow.global_resources:
            workflow.register_resource(f"board_{name}", 1)
    return {
        f"board_{name}": (lambda wildcards, name=name: int(wildcards.board == name))
        for name in config["boards"]
    }


def benchmark_threads(wildcards):
    """The local board is this host: its benchmarks take every core, so nothing runs beside them."""
    return workflow.cores if is_local_board(wildcards.board) else 1
