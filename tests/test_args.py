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


# -- one declaration: options, defaults, attributes, construction from a dict ---------------------------
def test_one_declaration_gives_the_parser_the_defaults_and_the_construction(tmp_path):
    from edge_ai_lib.compilers.onnxruntime import ONNXRuntimeCompiler

    parser, _ = ONNXRuntimeCompiler.form_argparse()
    args = parser.parse_args(["--compiled-model-path", str(tmp_path / "m.onnx"), "--quantization", "static",
                              "--no-per-channel"])
    from_flags = ONNXRuntimeCompiler.from_argparse(args, None)
    from_dict = ONNXRuntimeCompiler.from_settings({"compiled_model_path": str(tmp_path / "m.onnx"),
                                                   "quantization": "static", "per_channel": False}, None)
    assert from_flags.argument_settings() == from_dict.argument_settings()
    assert from_dict.optimization_level == "extended"  # the declared default, written once
    assert from_dict.settings() == {"optimization_level": "extended", "quantization": "static",
                                    "representative_samples": 100, "per_channel": False}


def test_a_config_slice_with_an_unknown_key_names_the_known_ones():
    from edge_ai_lib.runtimeprotocols.network import NetworkProtocol

    with pytest.raises(EdgeAIError) as error:
        NetworkProtocol.from_settings({"timout": 5})
    assert str(error.value) == ("NetworkProtocol has no argument 'timout'; known: host, max_payload, packet_size, "
                                "port, timeout (did you mean timeout?)")


@pytest.mark.parametrize("settings, message", [
    ({"port": "http"}, "NetworkProtocol argument port: expected an integer, got 'http'"),
    ({"port": True}, "NetworkProtocol argument port: expected an integer, got True"),
    ({"timeout": float("nan")}, "NetworkProtocol argument timeout: expected a number, got nan"),
])
def test_a_value_of_the_wrong_type_is_refused(settings, message):
    from edge_ai_lib.runtimeprotocols.network import NetworkProtocol

    with pytest.raises(EdgeAIError, match=message):
        NetworkProtocol.from_settings(settings)


def test_a_choice_outside_the_declared_ones_is_refused(tmp_path):
    from edge_ai_lib.compilers.tflite import TFLiteCompiler

    with pytest.raises(EdgeAIError, match="TFLiteCompiler argument target: 'int4' is not one of float32, float16, "
                                          "int8, edgetpu"):
        TFLiteCompiler.from_settings({"compiled_model_path": str(tmp_path / "m.tflite"), "target": "int4"}, None)


def test_a_missing_required_argument_is_named():
    from edge_ai_lib.runtimes.onnxruntime import ONNXRuntime

    with pytest.raises(EdgeAIError, match="ONNXRuntime needs its argument save_model_path"):
        ONNXRuntime.from_settings({"num_threads": 1})
