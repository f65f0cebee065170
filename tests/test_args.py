"""Loading classes by dotted path: the errors must name the path and what exists nearby."""

import pytest

from edge_ai_lib.core.args import load_class
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import ClassPathError, EdgeAIError
from edge_ai_lib.core.model import ModelWrapper
from edge_ai_lib.datasets.digits import DigitsDataset


def test_loads_a_class_by_dotted_path():
    assert load_class("edge_ai_lib.datasets.digits.DigitsDataset", Dataset) is DigitsDataset


def test_unknown_class_lists_classes_of_the_module():
    with pytest.raises(ClassPathError) as error:
        load_class("edge_ai_lib.datasets.digits.DigitDataset")
    message = str(error.value)
    assert "edge_ai_lib.datasets.digits.DigitDataset" in message
    assert "has no class 'DigitDataset'" in message
    assert "DigitsDataset" in message


def test_unknown_module_names_nearby_modules():
    with pytest.raises(ClassPathError) as error:
        load_class("edge_ai_lib.datasets.digit.DigitsDataset")
    message = str(error.value)
    assert "no module named 'edge_ai_lib.datasets.digit'" in message
    assert "edge_ai_lib.datasets.digits" in message


def test_unknown_package_lists_its_modules():
    with pytest.raises(ClassPathError) as error:
        load_class("edge_ai_lib.modelwrapper.classification.pytorch_digits.PyTorchDigitsCNN")
    assert "edge_ai_lib.modelwrappers" in str(error.value)


def test_class_of_the_wrong_kind_is_refused():
    with pytest.raises(ClassPathError, match="not a ModelWrapper"):
        load_class("edge_ai_lib.datasets.digits.DigitsDataset", ModelWrapper)


def test_not_a_dotted_path():
    with pytest.raises(ClassPathError, match="not a dotted class path"):
        load_class("DigitsDataset")


def test_every_error_shares_the_root():
    assert issubclass(ClassPathError, EdgeAIError)
