"""Real training of both digits CNNs (2 epochs, fixed seeds), save/load, ONNX export, load errors."""

import numpy as np
import pytest

from edge_ai_lib.core.errors import ModelLoadError
from edge_ai_lib.core.wire import decode_tensors, encode_tensors
from edge_ai_lib.scenarios.onnx_export import onnx_parity

pytestmark = pytest.mark.slow


@pytest.fixture(params=["keras", "torch"])
def trained(request):
    return request.getfixturevalue(f"trained_{request.param}_digits")


def test_two_epochs_reach_eighty_percent(trained):
    wrapper, history = trained
    assert len(history["val_accuracy"]) == 2
    assert history["val_accuracy"][-1] >= 0.80
    quality, timing = wrapper.test_inference(warmup=3, progress=False)
    assert quality["accuracy"] >= 0.80
    assert quality["sample_count"] == 360
    assert len(timing.samples_s) == 360 and len(timing.warmup_s) == 3 and timing.cold_first_s > 0


def test_save_and_load_give_identical_outputs(trained, digits):
    wrapper, _ = trained
    inputs, _ = next(digits.iter_batches("validation", batch_size=32))
    reloaded = type(wrapper)(wrapper.model_path, digits, from_file=True)
    assert np.array_equal(wrapper.predict(inputs), reloaded.predict(inputs))


def test_onnx_export_matches_the_framework(trained, digits, tmp_path):
    import onnxruntime

    wrapper, _ = trained
    path = tmp_path / "model.onnx"
    wrapper.save_to_onnx(path)
    assert onnx_parity(wrapper, path) <= 1e-4
    # and on real dataset inputs, with a batch size other than the export's
    inputs, _ = next(digits.iter_batches("validation", batch_size=17))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: wrapper.preprocess_input(inputs)})[0]
    assert np.max(np.abs(onnx_out - wrapper.predict(inputs))) <= 1e-4


def test_io_specification_and_bytes_round_trip(trained, digits):
    wrapper, _ = trained
    spec = wrapper.get_io_specification()
    assert spec["input"][0]["shape"][0] == -1 and spec["output"][0]["shape"] == [-1, 10]
    inputs = next(digits.iter_batches("validation", batch_size=3))[0]
    outputs = wrapper.predict(inputs)
    assert np.array_equal(wrapper.convert_output_from_bytes(encode_tensors([outputs])), outputs)
    (sent,) = decode_tensors(wrapper.convert_input_to_bytes(inputs))
    assert np.array_equal(sent, wrapper.preprocess_input(inputs)) and sent.dtype == np.float32


@pytest.mark.parametrize("wrapper_name", ["keras", "torch"])
def test_missing_model_file_names_the_fix(wrapper_name, digits, tmp_path):
    cls = _wrapper_class(wrapper_name)
    path = tmp_path / "absent.model"
    with pytest.raises(ModelLoadError) as error:
        cls(path, digits, from_file=True)
    assert str(path) in str(error.value) and "model_training" in str(error.value)


@pytest.mark.parametrize("wrapper_name", ["keras", "torch"])
def test_corrupt_model_file_names_the_fix(wrapper_name, digits, tmp_path):
    cls = _wrapper_class(wrapper_name)
    path = tmp_path / ("corrupt.keras" if wrapper_name == "keras" else "corrupt.pt")
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelLoadError) as error:
        cls(path, digits, from_file=True)
    assert "corrupt" in str(error.value) and str(path) in str(error.value)


def test_checkpoint_of_another_wrapper_is_refused(trained_torch_digits, digits, tmp_path):
    import torch

    from edge_ai_lib.modelwrappers.frameworks.pytorch import CHECKPOINT_FORMAT

    wrapper, _ = trained_torch_digits
    path = tmp_path / "other.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "wrapper": "somewhere.Else", "state_dict": {}}, path)
    with pytest.raises(ModelLoadError, match="holds a somewhere.Else model"):
        type(wrapper)(path, digits, from_file=True)


def _wrapper_class(name):
    if name == "keras":
        from edge_ai_lib.modelwrappers.classification.tensorflow_digits import TensorFlowDigitsCNN
        return TensorFlowDigitsCNN
    from edge_ai_lib.modelwrappers.classification.pytorch_digits import PyTorchDigitsCNN
    return PyTorchDigitsCNN
