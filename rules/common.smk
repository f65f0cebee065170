# Helpers and input functions of the rules. Nothing here imports a deep-learning framework.
import hashlib
import platform
import sys
from pathlib import Path

from edge_ai_lib.core.args import load_class

PYTHON = sys.executable
HOST_ARCHITECTURE = platform.machine()
MODEL_EXTENSIONS = {"keras": "keras", "pytorch": "pt"}
FRAMEWORK_MODULES = {
    "keras": "edge_ai_lib.modelwrappers.frameworks.tensorflow",
    "pytorch": "edge_ai_lib.modelwrappers.frameworks.pytorch",
}
BENCHMARK = {"warmup": 10, "max_samples": None, **config.get("benchmark", {})}


def architecture(name):
    return HOST_ARCHITECTURE if name == "host" else name


def cli_args(arguments):
    """Class arguments of the config as command-line options: {"target": "int8"} -> --target int8."""
    options = []
    for key, value in sorted((arguments or {}).items()):
        name = key.replace("_", "-")
        if isinstance(value, bool):
            options.append(f"--{name}" if value else f"--no-{name}")
        elif isinstance(value, list):
            options.extend([f"--{name}", *map(str, value)])
        else:
            options.extend([f"--{name}", str(value)])
    return " ".join(options)


def check_matrix():
    """Cross-checks the schema cannot express; each error names the key and the fix."""
    problems = []
    for name, model in config["models"].items():
        if model["dataset"] not in config["datasets"]:
            problems.append(
                f"models.{name}.dataset: '{model['dataset']}' is not a key of datasets"
            )
    for name, compiler in config["compilers"].items():
        for excluded in compiler.get("exclude_models", []):
            if excluded not in config["models"]:
                problems.append(
                    f"compilers.{name}.exclude_models: '{excluded}' is not a key of models"
                )
    targets = {architecture(c["target"]) for c in config["compilers"].values()}
    for name, board in config["boards"].items():
        if architecture(board["architecture"]) not in targets:
            problems.append(
                f"boards.{name}.architecture: no compiler targets {architecture(board['architecture'])} "
                f"(compilers target {', '.join(sorted(targets))}): add a compiler with that target or "
                "remove the board"
            )
    if problems:
        raise ValueError("invalid config/config.yaml:\n  " + "\n  ".join(problems))


check_matrix()

RUNS = [
    (model, compiler, board)
    for model in config["models"]
    for compiler, settings in config["compilers"].items()
    if model not in settings.get("exclude_models", [])
    for board, board_settings in config["boards"].items()
    if architecture(settings["target"]) == architecture(board_settings["architecture"])
]

for board_name in config["boards"]:
    if f"board_{board_name}" not in workflow.global_resources:
        workflow.register_resource(f"board_{board_name}", 1)


def file_hash(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def module_file(module):
    """The source file of a module, found without importing it (only its parent packages)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(
            f"cannot find the module '{module}': check the class paths in the config"
        )
    return spec.origin


def model_source_hash(model):
    """Content hashes of the model's own source and of its framework module: an edit reruns the model."""
    settings = config["models"][model]
    return {
        "wrapper": file_hash(module_file(settings["wrapper"].rpartition(".")[0])),
        "framework": file_hash(module_file(FRAMEWORK_MODULES[settings["framework"]])),
    }


def dataset_of(model):
    return config["models"][model]["dataset"]


def dataset_summary(model):
    return f"results/datasets/{dataset_of(model)}/summary.json"


def model_file(model):
    return f"results/models/{model}/model.{MODEL_EXTENSIONS[config['models'][model]['framework']]}"


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
    return f"results/models/{model}/model.onnx"


def benchmark_results():
    return [f"results/benchmarks/{m}/{c}/{b}.json" for m, c, b in RUNS]


def board_resources():
    """One exclusive resource per board: a job takes 1 of its own board's and 0 of the others'."""
    return {
        f"board_{name}": (lambda wildcards, name=name: int(wildcards.board == name))
        for name in config["boards"]
    }


def benchmark_threads(wildcards):
    """The local board is this host: its benchmarks take every core, so nothing runs beside them."""
    return workflow.cores if config["boards"][wildcards.board]["type"] == "local" else 1


def board_cli(board):
    """How inference_client reaches a board: it starts a local one itself, or connects to host:port."""
    settings = config["boards"][board]
    if settings["type"] == "local":
        return "--board local"
    return f"--board ssh --host {settings['host']} --port {settings.get('port', 12345)}"
