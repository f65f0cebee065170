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

from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import ConfigurationError
from edge_ai_lib.core.files import atomic_write_text, write_failure
from edge_ai_lib.core.measurements import collect_provenance
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.scenarios.cli import ClassArgument, parse_scenario_arguments, run_scenario


def _own_arguments(group) -> None:
    group.add_argument("--logdir", type=Path, required=True,
                       help="Directory of the training logs (TensorBoard events and training.json)")
    group.add_argument("--batch-size", type=int, default=32, help="Training batch size (default: %(default)s)")
    group.add_argument("--learning-rate", type=float, default=0.001, help="Learning rate (default: %(default)s)")
    group.add_argument("--num-epochs", type=int, default=10, help="Number of epochs (default: %(default)s)")


def main(argv: Sequence[str] | None = None) -> None:
    args, classes = parse_scenario_arguments(
        __doc__.splitlines()[0],
        [ClassArgument("modelwrappercls", ModelWrapper, "ModelWrapper class (dotted path)"),
         ClassArgument("datasetcls", Dataset, "Dataset class (dotted path)")],
        add_own=_own_arguments, argv=argv)
    for name in ("batch_size", "num_epochs"):
        if getattr(args, name) < 1:
            raise ConfigurationError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.learning_rate <= 0:
        raise ConfigurationError(f"--learning-rate must be positive, got {args.learning_rate}")
    dataset = classes["datasetcls"].from_argparse(args)
    wrapper = classes["modelwrappercls"].from_argparse(dataset, args, from_file=False)
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
    wrapper.save_model(args.model_path)
    summary = {"model": wrapper.describe(), "dataset": dataset.describe("validation"),
               "training_seconds": elapsed, "history": history,
               "provenance": collect_provenance(vars(args))}
    atomic_write_text(args.logdir / "training.json", json.dumps(summary, indent=2) + "\n",
                      elsewhere="pass another --logdir")
    print(f"saved {args.model_path}: validation accuracy {history['val_accuracy'][-1]:.4f} "
          f"after {args.num_epochs} epochs ({elapsed:.1f} s)")


if __name__ == "__main__":
    sys.exit(run_scenario(main))
