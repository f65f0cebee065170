"""Download (if needed) and prepare a dataset in its root.

    python -m edge_ai_lib.scenarios.dataset_preparation edge_ai_lib.datasets.digits.DigitsDataset \\
        --dataset-root build/digits
"""

from __future__ import annotations

import json
import sys
from typing import Sequence

from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.scenarios.cli import (
    ClassArgument,
    parse_scenario_arguments,
    run_scenario,
)


def main(argv: Sequence[str] | None = None) -> None:
    run = parse_scenario_arguments(
        __doc__.splitlines()[0], [ClassArgument("dataset", Dataset, "Dataset class (dotted path)")], argv=argv)
    dataset = run.build("dataset", download_dataset=True)
    summary = {split: dataset.split_size(split) for split in dataset.splits}
    print(json.dumps({"dataset": dataset.describe("train")["class"], "root": str(dataset.root),
                      "classes": len(dataset.get_class_names()), "splits": summary}))


if __name__ == "__main__":
    sys.exit(run_scenario(main))
