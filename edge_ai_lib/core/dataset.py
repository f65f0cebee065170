"""The Dataset interface: download, prepare, split, preprocess, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edge_ai_lib.core.args import Argument, ArgumentsMixin
from edge_ai_lib.core.errors import DatasetNotFoundError


class Dataset(ArgumentsMixin):
    """A labelled dataset split into training and validation parts with a fixed seed.

    Samples are kept as light references (`self.sample_refs`, e.g. file paths or indices) and turned
    into arrays batch by batch with `prepare_input_samples`, so large datasets never sit in memory
    whole. Subclasses implement `download_dataset`, `is_prepared`, `load_samples`,
    `prepare_input_samples` and `get_class_names`.

    Its arguments (see `arguments`) are kept as attributes: `root`, `batch_size`, `download` (None:
    the dataset's own choice, `download_by_default`), `validation_fraction`, `split_seed`.
    """

    arguments_title = "Dataset arguments"
    arguments = (
        Argument("dataset_root", Path, help="Directory of the dataset (downloaded and prepared there)",
                 attribute="root"),
        Argument("download_dataset", bool, None,
                 "Download and prepare the dataset if the root lacks it (default: the dataset's own choice: "
                 "yes for bundled data, no for downloads)", attribute="download"),
        Argument("inference_batch_size", int, 1, "Batch size of inference", attribute="batch_size"),
        Argument("validation_fraction", float, 0.2,
                 "Part held out for validation where the dataset has no official split"),
        Argument("split_seed", int, 12345, "Seed of the train/validation split"),
    )
    download_by_default = False

    def __init__(self, root: Path | None = None, **settings: Any):
        self.configure({"dataset_root": root, **settings} if root is not None else settings)
        if self.download is None:
            self.download = self.download_by_default
        self.sample_refs: list[Any] = []
        self.labels: np.ndarray = np.zeros(0, dtype=np.int64)
        self.splits: dict[str, np.ndarray] = {}
        self.prepare()

    # -- preparation -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Make sure the dataset is on disk (downloading it if allowed), then index its samples."""
        if not self.is_prepared():
            if not self.download:
                raise DatasetNotFoundError(
                    f"dataset root '{self.root}' does not hold a prepared {type(self).__name__}: "
                    f"run `python -m edge_ai_lib.scenarios.dataset_preparation "
                    f"{type(self).__module__}.{type(self).__name__} --dataset-root {self.root}` "
                    "or pass --download-dataset"
                )
            self.root.mkdir(parents=True, exist_ok=True)
            self.download_dataset()
        self.load_samples()
        self.splits = self.make_splits()

    def is_prepared(self) -> bool:
        """Whether `root` already holds everything `load_samples` needs."""
        raise NotImplementedError

    def download_dataset(self) -> None:
        """Fetch and unpack the dataset into `root`."""
        raise NotImplementedError

    def load_samples(self) -> None:
        """Fill `sample_refs` and `labels` from the prepared files in `root`."""
        raise NotImplementedError

    def make_splits(self) -> dict[str, np.ndarray]:
        """Index arrays of the `train` and `validation` splits (stratified, seeded)."""
        from sklearn.model_selection import train_test_split

        indices = np.arange(len(self.sample_refs))
        train, validation = train_test_split(
            indices, test_size=self.validation_fraction, random_state=self.split_seed,
            stratify=self.labels,
        )
        return {"train": np.sort(train), "validation": np.sort(validation)}

    # -- samples ---------------------------------------------------------------------------------------
    def prepare_input_samples(self, refs: Sequence[Any]) -> np.ndarray:
        """Turn sample references into one float32 batch array (N, ...)."""
        raise NotImplementedError

    def prepare_output_samples(self, labels: Sequence[int]) -> np.ndarray:
        """Turn labels into the form `evaluate` compares predictions with."""
        return np.asarray(labels, dtype=np.int64)

    def get_class_names(self) -> list[str]:
        raise NotImplementedError

    def split_size(self, split: str) -> int:
        return len(self._split_indices(split))

    def _split_indices(self, split: str) -> np.ndarray:
        if split not in self.splits:
            raise DatasetNotFoundError(
                f"{type(self).__name__} has no split '{split}': use one of {', '.join(self.splits)}"
            )
        return self.splits[split]

    def iter_batches(self, split: str = "validation", batch_size: int | None = None,
                     max_samples: int | None = None, shuffle_seed: int | None = None
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (inputs, labels) batches of a split, in a fixed or seeded order."""
        batch_size = batch_size or self.batch_size
        indices = self._split_indices(split)
        if shuffle_seed is not None:
            indices = np.random.default_rng(shuffle_seed).permutation(indices)
        if max_samples is not None:
            indices = indices[:max_samples]
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            refs = [self.sample_refs[i] for i in chunk]
            yield self.prepare_input_samples(refs), self.prepare_output_samples(self.labels[chunk])

    def get_split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The whole split as arrays (for small datasets and representative sets)."""
        indices = self._split_indices(split)
        refs = [self.sample_refs[i] for i in indices]
        return self.prepare_input_samples(refs), self.prepare_output_samples(self.labels[indices])

    # -- evaluation ------------------------------------------------------------------------------------
    def evaluate(self, probabilities: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
        """Quality metrics of a classification run (see quality.classification_quality)."""
        from edge_ai_lib.core.quality import classification_quality

        return classification_quality(np.asarray(probabilities), np.asarray(truth), self.get_class_names())

    def describe(self, split: str) -> dict[str, Any]:
        return {
            "class": f"{type(self).__module__}.{type(self).__name__}",
            "root": str(self.root),
            "split": split,
            "sample_count": self.split_size(split),
            "split_seed": self.split_seed,
            "class_count": len(self.get_class_names()),
        }
