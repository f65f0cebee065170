"""What every PyTorch model shares: checkpoints, training loop, ONNX export, inference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_ai_lib.core.errors import ModelLoadError, NotSupportedError
from edge_ai_lib.core.files import atomic_output
from edge_ai_lib.core.model import ModelWrapper

CHECKPOINT_FORMAT = "edge_ai_lib.pytorch/1"
# The TorchScript-based exporter at opset 17 gives graphs that onnxruntime, TVM's Relax importer,
# onnx2tf and onnx2torch all read; the dynamo exporter's Reshape-19 is not read by onnx2torch.
ONNX_OPSET = 17


class PyTorchModelWrapper(ModelWrapper):
    """PyTorch modules saved as checkpoints of their state dict; outputs are logits.

    Checkpoints are loaded with `weights_only=True`: a model file can never run code on load.
    """

    seed = 12345

    def build_network(self) -> torch.nn.Module:
        raise NotImplementedError

    def build_model(self) -> torch.nn.Module:
        torch.manual_seed(self.seed)
        return self.build_network()

    def load_model(self, path: Path) -> torch.nn.Module:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ModelLoadError(
                f"cannot load PyTorch checkpoint '{path}' ({type(error).__name__}: {str(error)[:200]}): the file "
                "is corrupt or not an edge_ai_lib checkpoint; train it again with model_training") from error
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ModelLoadError(f"'{path}' is not an edge_ai_lib PyTorch checkpoint ({CHECKPOINT_FORMAT}): "
                                 "train the model with model_training")
        expected = f"{type(self).__module__}.{type(self).__name__}"
        if checkpoint.get("wrapper") != expected:
            raise ModelLoadError(f"'{path}' holds a {checkpoint.get('wrapper')} model, not a {expected}: pass "
                                 "the wrapper class the model was trained with")
        self.stored_class_names = checkpoint.get("class_names")
        network = self.build_network()
        try:
            network.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as error:
            raise ModelLoadError(f"the weights in '{path}' do not fit {expected} ({str(error)[:200]}): train "
                                 "the model again") from error
        return network.eval()

    def save_model(self, path: Path) -> None:
        checkpoint = {"format": CHECKPOINT_FORMAT, "wrapper": f"{type(self).__module__}.{type(self).__name__}",
                      "class_names": self.get_class_names(), "state_dict": self.model.state_dict()}
        with atomic_output(path, "pass another --model-path") as temporary:
            torch.save(checkpoint, temporary)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        shape = self.get_io_specification()["input"][0]["shape"]
        return torch.zeros([batch] + shape[1:], dtype=torch.float32)

    def save_to_onnx(self, path: Path) -> None:
        export_onnx(self.model, self.example_input(), path)

    def to_framework_input(self, inputs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))

    def run_inference(self, prepared: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(prepared)

    def to_numpy_output(self, outputs: torch.Tensor) -> np.ndarray:
        return outputs.detach().numpy()

    def postprocess_outputs(self, outputs: np.ndarray) -> np.ndarray:
        shifted = outputs - outputs.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)

    def get_framework_and_version(self) -> tuple[str, str]:
        return "pytorch", torch.__version__

    def train_model(self, batch_size: int, learning_rate: float, epochs: int, logdir: Path) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        torch.manual_seed(self.seed)
        model = self.model
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
        loss_function = torch.nn.CrossEntropyLoss()
        history: dict[str, Any] = {"epochs": epochs, "loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
        writer = SummaryWriter(log_dir=str(logdir))
        try:
            for epoch in range(epochs):
                model.train()
                total_loss, correct, seen = 0.0, 0, 0
                batches = self.dataset.iter_batches("train", batch_size=batch_size, shuffle_seed=self.seed + epoch)
                steps = (self.dataset.split_size("train") + batch_size - 1) // batch_size
                for inputs, labels in tqdm(batches, total=steps, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                                           mininterval=0.5):
                    x = self.to_framework_input(self.preprocess_input(inputs))
                    y = torch.from_numpy(labels)
                    optimizer.zero_grad()
                    logits = model(x)
                    loss = loss_function(logits, y)
                    loss.backward()
                    optimizer.step()
                    total_loss += loss.item() * len(labels)
                    correct += int((logits.argmax(1) == y).sum())
                    seen += len(labels)
                val_loss, val_accuracy = self._evaluate(loss_function, batch_size)
                for name, value in (("loss", total_loss / seen), ("accuracy", correct / seen),
                                    ("val_loss", val_loss), ("val_accuracy", val_accuracy)):
                    history[name].append(value)
                    writer.add_scalar(name, value, epoch)
                print(f"epoch {epoch + 1}/{epochs}: loss {total_loss / seen:.4f} accuracy {correct / seen:.4f} "
                      f"val_loss {val_loss:.4f} val_accuracy {val_accuracy:.4f}", flush=True)
        finally:
            writer.close()
        model.eval()
        return history

    def _evaluate(self, loss_function, batch_size: int) -> tuple[float, float]:
        self.model.eval()
        total_loss, correct, seen = 0.0, 0, 0
        with torch.inference_mode():
            for inputs, labels in self.dataset.iter_batches("validation", batch_size=batch_size):
                logits = self.model(self.to_framework_input(self.preprocess_input(inputs)))
                y = torch.from_numpy(labels)
                total_loss += float(loss_function(logits, y)) * len(labels)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(labels)
        return total_loss / seen, correct / seen


def export_onnx(module: torch.nn.Module, example_input: torch.Tensor, path: Path) -> None:
    """PyTorch's one ONNX export (opset `ONNX_OPSET`, TorchScript exporter, free batch dimension).

    Used by the wrappers' `save_to_onnx` and by the ONNX conversion grid.
    """
    module.eval()
    with atomic_output(path, "write the ONNX file elsewhere") as temporary:
        torch.onnx.export(module, (example_input,), str(temporary), dynamo=False,
                          opset_version=ONNX_OPSET, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


def import_onnx(path: Path) -> torch.nn.Module:
    """PyTorch's one ONNX import: onnx2torch's module for the ONNX file at `path`, in eval mode."""
    import onnx

    _torchvision_or_stand_in()
    from onnx2torch import convert

    return convert(onnx.load(str(path))).eval()


def _torchvision_or_stand_in() -> None:
    """Let onnx2torch import where torchvision cannot.

    onnx2torch imports torchvision at its top for two operators only (NonMaxSuppression, RoiAlign), and
    PyPI's torchvision does not run beside the CPU torch. Without a working torchvision, a stand-in
    takes its place whose three functions refuse to run, naming the operator; every other operator
    converts as it would.
    """
    import sys
    import types

    try:
        import torchvision.ops  # noqa: F401

        return
    except (ImportError, RuntimeError, OSError):
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]

    def refuse(operator: str):
        def call(*args, **kwargs):
            raise NotSupportedError(f"onnx2torch needs torchvision for the ONNX operator {operator}, and "
                                    "torchvision does not import beside this torch: install the torchvision "
                                    "built for it")
        return call

    package = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms = refuse("NonMaxSuppression")
    ops.box_convert = refuse("NonMaxSuppression")
    ops.roi_align = refuse("RoiAlign")
    package.ops = ops
    sys.modules.update({"torchvision": package, "torchvision.ops": ops})
