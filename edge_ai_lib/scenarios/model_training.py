"""Train a model on a dataset and save it.

    python -m edge_ai_lib.scenarios.model_training WRAPPER DATASET --logdir build/logs \\
        --dataset-root build/digits --model-path build/digits.keras \\
        --batch-size 32 --learning-rate 0.001 --num-epochs 10
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Sequence

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import ConfigurationError
from edge_ai_lib.core.files import atomic_write_text, write_failure
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.core.provenance import collect_provenance
from edge_ai_lib.scenarios.cli import (
    ClassArgument,
    parse_scenario_arguments,
    run_scenario,
)

OPTIONS = (
    Argument("logdir", Path, help="Directory of the training logs (TensorBoard events and training.json)"),
    Argument("batch_size", int, 32, "Training batch size"),
    Argument("learning_rate", float, 0.001, "Learning rate"),
    Argument("num_epochs", int, 10, "Number of epochs"),
)


def main(argv: Sequence[str] | None = None) -> None:
    run = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [ClassArgument("model", ModelWrapper, "ModelWrapper class (dotted path)"),
         ClassArgument("dataset", Dataset, "Dataset class (dotted path)")], options=OPTIONS, argv=argv)
    args = run.options
    for name in ("batch_size", "num_epochs"):
        if getattr(args, name) < 1:
            raise ConfigurationError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.learning_rate <= 0:
        raise ConfigurationError(f"--learning-rate must be positive, got {args.learning_rate}")
    dataset = run.build("dataset")
    wrapper = run.build("model", dataset, False)
    args.logdir = Path(args.logdir)
    start = time.perf_counter()
    try:
        args.logdir.mkdir(parents=True, exist_ok=True)
        history = wrapper.train_model(args.batch_size, args.learning_rate, args.num_epochs, args.logdir)
    except Exception as error:
        # TensorBoard writers fail on a full disk with framework errors that carry no errno.
        failure = write_failure(args.logdir / "events", error, "pass another --logdir", certain=False)
        if failure is not None:
            raise failure from error
        raise
    elapsed = time.perf_counter() - start
    wrapper.save_model(wrapper.model_path)
    summary = {"model": wrapper.describe(), "dataset": dataset.describe("validation"),
               "training_seconds": elapsed, "history": history,
               "provenance": collect_provenance(run.spec)}
    atomic_write_text(args.logdir / "training.json", json.dumps(summary, indent=2) + "\n",
                      elsewhere="pass another --logdir")
    print(f"saved {wrapper.model_path}: validation accuracy {history['val_accuracy'][-1]:.4f} "
          f"after {args.num_epochs} epochs ({elapsed:.1f} s)")


if __name__ == "__main__":
    sys.exit(run_scenario(main))
