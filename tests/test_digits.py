"""The bundled digits dataset: preparation, a reproducible stratified split, clear errors."""

import numpy as np
import pytest

from edge_ai_lib.core.errors import DatasetError, DatasetNotFoundError
from edge_ai_lib.datasets.digits import DigitsDataset


def test_prepares_from_the_bundled_copy(tmp_path):
    dataset = DigitsDataset(tmp_path / "digits")
    assert (tmp_path / "digits" / "digits.npz").is_file()
    assert dataset.split_size("train") + dataset.split_size("validation") == 1797
    assert dataset.split_size("validation") == 360
    inputs, labels = next(dataset.iter_batches("validation", batch_size=7))
    assert inputs.shape == (7, 8, 8, 1) and inputs.dtype == np.float32
    assert 0.0 <= inputs.min() and inputs.max() <= 1.0
    assert labels.dtype == np.int64


def test_split_is_fixed_by_its_seed_and_stratified(tmp_path, digits):
    again = DigitsDataset(tmp_path / "again")
    assert np.array_equal(again.splits["validation"], digits.splits["validation"])
    other = DigitsDataset(tmp_path / "other", split_seed=7)
    assert not np.array_equal(other.splits["validation"], digits.splits["validation"])
    counts = np.bincount(digits.labels[digits.splits["validation"]], minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38
    assert not set(digits.splits["train"]) & set(digits.splits["validation"])


def test_missing_root_without_download_names_the_fix(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as error:
        DigitsDataset(missing, download_dataset=False)
    message = str(error.value)
    assert str(missing) in message
    assert "dataset_preparation" in message and "--download-dataset" in message


def test_unreadable_prepared_file_is_reported(tmp_path):
    root = tmp_path / "digits"
    root.mkdir()
    (root / "digits.npz").write_bytes(b"not an npz file")
    with pytest.raises(DatasetError, match="unreadable"):
        DigitsDataset(root)


def test_unknown_split_is_reported(digits):
    with pytest.raises(DatasetNotFoundError, match="no split 'test'"):
        digits.split_size("test")
