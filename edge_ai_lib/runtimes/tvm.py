"""TVM libraries (`.so` from `edge_ai_lib.compilers.tvm.TVMCompiler`) on a board, with the Relax VM.

The board needs `edge_ai_lib[tvm]` only: the TVM runtime loads the library, no compiler runs here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.errors import RuntimeFailure
from edge_ai_lib.core.runtime import Runtime, check_batch


class TVMRuntime(Runtime):
    """Runs a TVM Relax library's `main` on the CPU.

    The library is compiled for one batch size (static shapes); a batch larger than a library compiled
    for batch 1 is run sample by sample, inside the timed call, and its outputs stacked.
    """

    arguments_title = "TVM runtime arguments"

    def __init__(self, save_model_path: Path | None = None, **settings: Any):
        super().__init__(save_model_path, **settings)
        self.vm = None
        self.inputs: list[Any] = []
        self.results: list[np.ndarray] = []

    def _set_threads(self) -> None:
        """TVM's thread pool size: `num_threads`, else TVM's default (one per core it may use)."""
        import tvm

        if self.num_threads:
            os.environ["TVM_NUM_THREADS"] = str(self.num_threads)
            # affinity mode 0 (no pinning: boards are shared), thread count, no big/little exclusions
            tvm.get_global_func("runtime.config_threadpool")(0, self.num_threads, [])

    def load_model(self, path: Path) -> None:
        import tvm
        from tvm import relax

        self._set_threads()
        try:
            # The dynamic loader hands back the library already loaded from a path, so a model received
            # again at the same path would run the old one: load each from a fresh name, then drop the name.
            with tempfile.TemporaryDirectory(prefix="edge-ai-tvm-") as directory:
                fresh = Path(directory) / "model.so"
                shutil.copyfile(path, fresh)
                library = tvm.runtime.load_module(str(fresh))
            self.vm = relax.VirtualMachine(library, tvm.cpu())
            self.main = self.vm["main"]
        except Exception as error:
            raise RuntimeFailure(f"cannot load TVM library {path} ({type(error).__name__}: {str(error)[:300]}): it "
                                 "is corrupt, not a TVM Relax library, or built for another CPU or TVM version; "
                                 "compile it again for this board") from error
        self.input_specs = self._input_specs()

    def _input_specs(self) -> list[dict[str, Any]]:
        """Names, shapes and dtypes of `main`'s parameters, from the library's own Relax signature."""
        import tvm

        try:
            count = self.vm._get_function_arity("main")
            specs = []
            for index in range(count):
                name = self.vm._get_function_param_name("main", index)
                specs.append({"name": name, "shape": None, "dtype": "float32"})
        except (AttributeError, tvm.TVMError):
            specs = [{"name": "input", "shape": None, "dtype": "float32"}]
        return specs

    def set_inputs(self, tensors: list[np.ndarray]) -> None:
        import tvm

        if len(tensors) != len(self.input_specs):
            raise RuntimeFailure(f"the model takes {len(self.input_specs)} inputs, DATA carried {len(tensors)}")
        prepared = []
        for spec, tensor in zip(self.input_specs, tensors):
            array = np.ascontiguousarray(tensor, dtype=np.float32)
            if spec["shape"] is not None:
                check_batch(array[:1], spec["shape"], spec["name"])
            prepared.append(array)
        self.arrays = prepared
        self.inputs = [tvm.runtime.tensor(a) for a in prepared]

    def _call(self, inputs: list[Any]) -> list[np.ndarray]:
        result = self.main(*inputs)
        if hasattr(result, "numpy"):
            return [result.numpy()]
        return [item.numpy() for item in result]

    def invoke(self) -> None:
        import tvm

        try:
            self.results = self._call(self.inputs)
        except Exception as error:
            batch = self.arrays[0].shape[0] if self.arrays and self.arrays[0].ndim else 1
            if batch <= 1:
                raise RuntimeFailure(f"the TVM library failed on inputs of shapes "
                                     f"{[a.shape for a in self.arrays]} ({str(error)[:300]}): compile it for "
                                     "these shapes (the compiler's batch_size)") from error
            # A library compiled for one sample: run the batch sample by sample.
            outputs = [self._call([tvm.runtime.tensor(np.ascontiguousarray(a[i:i + 1])) for a in self.arrays])
                       for i in range(batch)]
            self.results = [np.concatenate([o[k] for o in outputs]) for k in range(len(outputs[0]))]

    def get_outputs(self) -> list[np.ndarray]:
        return self.results

    def get_framework_and_version(self) -> tuple[str, str]:
        import tvm

        return "tvm", tvm.__version__

    def threads_in_use(self) -> int | None:
        """`num_threads`, else the size of TVM's thread pool."""
        if self.num_threads:
            return self.num_threads
        import tvm

        return int(tvm.get_global_func("runtime.NumThreads")())

    def describe_io(self) -> dict[str, Any]:
        return {"input": [dict(spec) for spec in self.input_specs], "output": [], "device": "cpu"}
