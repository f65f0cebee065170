"""The 8x8 handwritten digits bundled with scikit-learn: the offline default dataset."""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import DatasetError
from edge_ai_lib.core.files import atomic_output, atomic_write_text

DATA_FILE = "digits.npz"


class DigitsDataset(Dataset):
    """1,797 grey 8x8 images of the digits 0-9 (UCI optical digits, as shipped with scikit-learn).

    "Downloading" copies the bundled data into the dataset root, so nothing leaves the machine;
    it is therefore allowed by default. Inputs are (N, 8, 8, 1) float32 in [0, 1].
    """

    download_by_default = True

    def is_prepared(self) -> bool:
        return (self.root / DATA_FILE).is_file()

    def download_dataset(self) -> None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        elsewhere = "choose another --dataset-root"
        atomic_write_text(self.root / "dataset.json", json.dumps({
            "name": "digits", "source": "sklearn.datasets.load_digits", "samples": int(bunch.target.size),
            "classes": 10, "image_shape": [8, 8], "pixel_range": [0, 16]}, indent=2) + "\n", elsewhere=elsewhere)
        # Written last: its presence is what marks the dataset as prepared.
        with atomic_output(self.root / DATA_FILE, elsewhere) as temporary:
            np.savez_compressed(temporary, images=bunch.images.astype(np.uint8),
                                labels=bunch.target.astype(np.int64))

    def load_samples(self) -> None:
        try:
            with np.load(self.root / DATA_FILE) as data:
                self.images = data["images"].astype(np.float32) / 16.0
                self.labels = data["labels"].astype(np.int64)
        except (OSError, KeyError, ValueError) as error:
            raise DatasetError(f"{self.root / DATA_FILE} is unreadable ({error}): delete it and run "
                               "dataset_preparation again") from error
        self.sample_refs = list(range(len(self.labels)))

    def prepare_input_samples(self, refs: Sequence[Any]) -> np.ndarray:
        return self.images[np.asarray(refs, dtype=np.int64)][..., np.newaxis]

    def get_class_names(self) -> list[str]:
        return [str(i) for i in range(10)]
