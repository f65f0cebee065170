"""What every Keras (TensorFlow backend) model shares: saving, loading, training, ONNX export, inference."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from edge_ai_lib.core.errors import ModelLoadError  # noqa: E402
from edge_ai_lib.core.files import atomic_output  # noqa: E402
from edge_ai_lib.core.model import ModelWrapper  # noqa: E402


class _Batches(keras.utils.PyDataset):
    """Feeds one dataset split to Keras batch by batch, reshuffled every epoch with a fixed seed."""

    def __init__(self, wrapper: "KerasModelWrapper", split: str, batch_size: int, shuffle_seed: int | None):
        super().__init__()
        self.wrapper = wrapper
        self.indices = wrapper.dataset.splits[split]
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.epoch = 0
        self.order = self.indices

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, index: int):
        chunk = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        dataset = self.wrapper.dataset
        inputs = dataset.prepare_input_samples([dataset.sample_refs[i] for i in chunk])
        return self.wrapper.preprocess_input(inputs), dataset.prepare_output_samples(dataset.labels[chunk])

    def on_epoch_end(self) -> None:
        self.epoch += 1
        if self.shuffle_seed is not None:
            self.order = np.random.default_rng(self.shuffle_seed + self.epoch).permutation(self.indices)


class KerasModelWrapper(ModelWrapper):
    """Keras 3 models saved as `.keras` files; outputs are class probabilities (softmax)."""

    seed = 12345

    def build_model(self) -> keras.Model:
        keras.utils.set_random_seed(self.seed)
        return self.build_network()

    def build_network(self) -> keras.Model:
        raise NotImplementedError

    def load_model(self, path: Path) -> keras.Model:
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as error:
            raise ModelLoadError(
                f"cannot load Keras model '{path}' ({type(error).__name__}: {str(error)[:200]}): the file is "
                "corrupt or not a .keras model; train it again with model_training") from error
        # A .keras file keeps no class names: without a dataset, number the classes.
        self.stored_class_names = [str(i) for i in range(int(model.outputs[0].shape[-1]))]
        return model

    def save_model(self, path: Path) -> None:
        path = Path(path)
        if path.suffix != ".keras":
            raise ModelLoadError(f"Keras models are saved as .keras files: use a --model-path ending in .keras, "
                                 f"not '{path.name}'")
        with atomic_output(path, "pass another --model-path") as temporary:
            self.model.save(temporary)

    def save_to_onnx(self, path: Path) -> None:
        export_onnx(self.model, path)

    def to_framework_input(self, inputs: np.ndarray) -> Any:
        return tf.convert_to_tensor(inputs)

    def run_inference(self, prepared: Any) -> Any:
        return self.model(prepared, training=False)

    def to_numpy_output(self, outputs: Any) -> np.ndarray:
        return np.asarray(outputs)

    def get_framework_and_version(self) -> tuple[str, str]:
        return "keras", f"{keras.__version__} (tensorflow {tf.__version__})"

    def get_io_specification(self) -> dict[str, list[dict[str, Any]]]:
        def spec(tensor, name):
            return {"name": name, "shape": [-1 if d is None else int(d) for d in tensor.shape],
                    "dtype": "float32"}
        return {"input": [spec(self.model.inputs[0], "input")], "output": [spec(self.model.outputs[0], "output")]}

    def compile_for_training(self, learning_rate: float) -> None:
        self.model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                           loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def train_model(self, batch_size: int, learning_rate: float, epochs: int, logdir: Path) -> dict[str, Any]:
        keras.utils.set_random_seed(self.seed)
        self.compile_for_training(learning_rate)
        train = _Batches(self, "train", batch_size, shuffle_seed=self.seed)
        validation = _Batches(self, "validation", batch_size, shuffle_seed=None)
        history = self.model.fit(
            train, validation_data=validation, epochs=epochs,
            callbacks=[keras.callbacks.TensorBoard(log_dir=str(logdir))],
            verbose=1 if sys.stderr.isatty() else 2,
        )
        return {
            "epochs": epochs,
            "loss": [float(v) for v in history.history["loss"]],
            "accuracy": [float(v) for v in history.history["accuracy"]],
            "val_loss": [float(v) for v in history.history["val_loss"]],
            "val_accuracy": [float(v) for v in history.history["val_accuracy"]],
        }


def export_onnx(model: keras.Model, path: Path) -> None:
    """Keras's one ONNX export (Keras's own `export(format="onnx")`, free batch dimension).

    Used by the wrappers' `save_to_onnx` and by the ONNX conversion grid.
    """
    shape = tuple(model.inputs[0].shape)
    with atomic_output(path, "write the ONNX file elsewhere") as temporary:
        model.export(str(temporary), format="onnx", verbose=False,
                     input_signature=[keras.InputSpec(shape=(None,) + shape[1:], dtype="float32")])
