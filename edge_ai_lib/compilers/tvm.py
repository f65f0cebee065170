"""TVM compilation: an ONNX model through Relax to a shared library for one CPU (this one or a board's).

The model is simplified by onnxsim with its input shapes fixed (the Relax importer needs static shapes:
the Keras export's run-time Reshape, for one, is refused otherwise), imported with
`tvm.relax.frontend.onnx`, optimised, optionally tuned with MetaSchedule, and exported as a `.so`
that `edge_ai_lib.runtimes.tvm.TVMRuntime` runs with the Relax virtual machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.compiler import ModelCompiler
from edge_ai_lib.core.errors import ConfigurationError, ConversionError, EdgeAIError, UnsupportedModelError
from edge_ai_lib.core.files import atomic_output

log = logging.getLogger(__name__)


# What each target architecture compiles to: LLVM triple, default mcpu/mattr, and the C compiler that
# links the library (Debian's cross compilers for the boards; None: the host's own).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "host": {"mtriple": None, "mcpu": None, "mattr": [], "cc": None},
    "x86_64": {"mtriple": "x86_64-linux-gnu", "mcpu": "x86-64-v2", "mattr": [], "cc": None},
    "aarch64": {"mtriple": "aarch64-linux-gnu", "mcpu": "generic", "mattr": ["+neon"],
                "cc": "aarch64-linux-gnu-gcc", "package": "gcc-aarch64-linux-gnu"},
    "armv7l": {"mtriple": "armv7l-linux-gnueabihf", "mcpu": "generic", "mattr": ["+neon"],
               "cc": "arm-linux-gnueabihf-gcc", "package": "gcc-arm-linux-gnueabihf", "mfloat-abi": "hard"},
    "riscv64": {"mtriple": "riscv64-linux-gnu", "mcpu": "generic-rv64", "mattr": ["+64bit", "+m", "+a", "+f", "+d", "+c"],
                "cc": "riscv64-linux-gnu-gcc", "package": "gcc-riscv64-linux-gnu"},
}
PIPELINES = ("reorder", "default", "dlight")
# The importer's own words for an operator it lacks (tvm.relax.frontend.onnx).
UNSUPPORTED_OPERATOR = re.compile(r"operators are not supported for frontend ONNX:\s*([^\n]+)")


def host_cpu() -> str:
    """The exact CPU name LLVM gives this machine ("skylake-avx512", "neoverse-n1"...), as TVM's LLVM sees it."""
    from tvm.target import codegen

    return str(codegen.llvm_get_system_cpu())


class TVMCompiler(ModelCompiler):
    """Compiles an ONNX model with TVM (Relax) into a shared library for the target's CPU.

    Parameters
    ----------
    architecture : str
        The compiler entry's `target` in the workflow's config: "host" (this CPU, exact `mcpu`),
        "x86_64", "aarch64", "armv7l" or "riscv64" (cross-compiled, linked with Debian's cross compilers).
    mcpu, mattr : str, list[str]
        LLVM CPU name and features; default: this CPU's own for "host", a generic CPU of the
        architecture (with NEON on Arm) otherwise.
    opt_level : int
        TVM's PassContext optimisation level (0-3).
    pipeline : str
        How untuned operators are scheduled. "reorder" (the default): each reduction's loops moved
        outside its innermost output loop and element-wise loops vectorized, so LLVM vectorizes
        convolutions and dense layers along contiguous memory (about 5x faster than "default" on the
        digits CNNs); "default": TVM's Relax pipeline as it is (loops in the operator's own order);
        "dlight": TVM's generic CPU schedules (dlight GEMV and reductions) where they apply.
    batch_size : int
        The batch the library is compiled for (shapes are static); a runtime given a larger batch runs it
        sample by sample when this is 1.
    tuning_trials : int
        MetaSchedule trials over the whole model; 0 does not tune.
    tuning_trials_per_task : int
        The most trials one task (one fused operator) gets; default: trials spread over the tasks.
    tuning_time_cap_s : float
        Tuning stops after this many seconds with the trials measured so far (the database records
        that it was capped); MetaSchedule itself has no time limit.
    tuning_database : Path
        The tuning database's directory: written by the first tuning, reused while the model and target
        are the same (the workflow makes it its own output).
    """

    arguments_title = "TVM compiler arguments"
    arguments = (
        Argument("architecture", str, "host", "Target architecture: host (this CPU), x86_64, aarch64, armv7l or riscv64",
                 choices=tuple(ARCHITECTURES)),
        Argument("mcpu", str, None, "LLVM CPU name (default: this CPU's for host, a generic one otherwise)"),
        Argument("mattr", str, None, "LLVM CPU features such as +neon (default: NEON on Arm)", many=True),
        Argument("opt_level", int, 3, "Optimisation level", choices=(0, 1, 2, 3)),
        Argument("pipeline", str, "reorder", "Schedules of untuned operators", choices=PIPELINES),
        Argument("batch_size", int, 1, "Batch size the library is compiled for"),
        Argument("tuning_trials", int, 0, "MetaSchedule tuning trials over the model (0: no tuning)"),
        Argument("tuning_trials_per_task", int, None, "The most trials per tuning task (default: the trials "
                 "spread evenly over the tasks)"),
        Argument("tuning_time_cap_s", float, None, "Stop tuning after this many seconds, keeping the trials "
                 "measured so far (default: no cap)"),
        Argument("tuning_database", Path, None, "Directory of the tuning database (default: beside the library)"),
    )
    accepted_frameworks = ("onnx",)
    compiled_suffix = ".so"

    @classmethod
    def tunes(cls, settings: dict[str, Any]) -> bool:
        return (settings.get("tuning_trials") or 0) > 0

    def __init__(self, dataset, compiled_model_path: Path | None = None, **settings: Any):
        super().__init__(dataset, compiled_model_path, **settings)
        if self.batch_size < 1:
            raise ConfigurationError(f"--batch-size must be 1 or more, not {self.batch_size}")
        if self.tuning_trials < 0:
            raise ConfigurationError(f"--tuning-trials must be 0 (no tuning) or more, not {self.tuning_trials}")
        if self.tuning_time_cap_s is not None and self.tuning_time_cap_s <= 0:
            raise ConfigurationError(f"--tuning-time-cap-s must be more than 0 seconds, not {self.tuning_time_cap_s}")

    def get_framework_and_version(self) -> tuple[str, str]:
        import tvm

        return "tvm", tvm.__version__

    # -- the target -------------------------------------------------------------------------------
    def target_description(self) -> dict[str, Any]:
        """The LLVM target as TVM takes it: kind, triple, CPU, features (and float ABI on armv7)."""
        known = ARCHITECTURES[self.architecture]
        target: dict[str, Any] = {"kind": "llvm"}
        if known["mtriple"]:
            target["mtriple"] = known["mtriple"]
        target["mcpu"] = self.mcpu or known["mcpu"] or host_cpu()
        mattr = self.mattr if self.mattr is not None else known["mattr"]
        if mattr:
            target["mattr"] = list(mattr)
        if "mfloat-abi" in known:
            target["mfloat-abi"] = known["mfloat-abi"]
        if self.architecture == "host":
            import os

            target["num-cores"] = len(os.sched_getaffinity(0))
        return target

    def target(self):
        import tvm

        try:
            return tvm.target.Target(self.target_description())
        except Exception as error:
            raise ConfigurationError(f"TVM refuses the target {self.target_description()} ({str(error)[:200]}): "
                                     "check --mcpu and --mattr (llc -march=... -mcpu=help lists them)") from error

    def _linker(self):
        """export_library's compile function: the host's compiler, or the architecture's cross compiler."""
        known = ARCHITECTURES[self.architecture]
        if known["cc"] is None:
            return None
        if shutil.which(known["cc"]) is None:
            raise ConfigurationError(f"cross-compiling for {self.architecture} needs {known['cc']}, which is not "
                                     f"installed: apt-get install {known['package']}")
        from tvm.support import cc

        return cc.cross_compiler(known["cc"])

    # -- import -------------------------------------------------------------------------------------
    def _fixed_shapes(self, model) -> dict[str, list[int]]:
        """Every graph input's shape with the batch (and any other free dimension) fixed."""
        initializers = {i.name for i in model.graph.initializer}
        shapes = {}
        for tensor in model.graph.input:
            if tensor.name in initializers:
                continue
            dims = tensor.type.tensor_type.shape.dim
            shape = []
            for index, dim in enumerate(dims):
                if dim.HasField("dim_value") and dim.dim_value > 0:
                    shape.append(dim.dim_value)
                elif index == 0:
                    shape.append(self.batch_size)
                else:
                    raise UnsupportedModelError(f"input '{tensor.name}' has a free dimension {index} "
                                                f"('{dim.dim_param}') besides the batch: TVM needs static shapes; "
                                                "export the model with a fixed input size")
            shapes[tensor.name] = shape
        return shapes

    def import_model(self, input_model_path: Path):
        """The ONNX model as a Relax IRModule with static shapes (onnxsim first), parameters bound in."""
        import onnx
        import onnxsim
        from tvm.relax.frontend.onnx import from_onnx

        input_model_path = Path(input_model_path)
        if not input_model_path.is_file():
            raise ConversionError(f"model file '{input_model_path}' does not exist: train or export it first")
        try:
            model = onnx.load(str(input_model_path))
        except Exception as error:
            raise ConversionError(f"{input_model_path} is not an ONNX model ({str(error)[:200]}): export it "
                                  "again") from error
        shapes = self._fixed_shapes(model)
        try:
            simplified, checked = onnxsim.simplify(model, overwrite_input_shapes=shapes)
            if checked:
                model = simplified
        except Exception as error:  # an operator onnxsim cannot run: let TVM's importer judge the model
            log.warning("onnxsim could not simplify %s (%s); importing it as it is", input_model_path,
                        str(error)[:200])
        try:
            return from_onnx(model, shape_dict=shapes, keep_params_in_input=False)
        except Exception as error:
            raise unsupported_model_error(input_model_path, error) from error

    # -- compilation --------------------------------------------------------------------------------
    def _schedule(self, mod, target):
        """The untuned operators' schedules (see `pipeline`), applied to the legalised module."""
        import tvm
        from tvm import relax

        with target:
            mod = tvm.transform.Sequential([
                relax.transform.DecomposeOpsForInference(),
                relax.transform.CanonicalizeBindings(),
                relax.get_pipeline("zero"),
            ])(mod)
            mod = self._untuned_schedules(mod)
        return mod

    def _untuned_schedules(self, mod):
        """The `pipeline`'s schedules on the operators no tuning scheduled."""
        if self.pipeline == "dlight":
            from tvm.s_tir import dlight

            return dlight.ApplyDefaultSchedule(dlight.cpu.GEMV(), dlight.cpu.Reduction())(mod)
        if self.pipeline == "reorder":
            return reorder_schedules(mod)
        return mod

    def build(self, mod, target):
        """The Relax module compiled for `target`: tuned with the database when tuning, else scheduled."""
        import tvm
        from tvm import relax

        with tvm.transform.PassContext(opt_level=self.opt_level):
            if self.tuning_trials > 0:
                mod = relax.get_pipeline("static_shape_tuning", total_trials=0, target=target,
                                         work_dir=str(self.database_directory))(mod)
                with target:
                    mod = self._untuned_schedules(mod)
            else:
                mod = self._schedule(mod, target)
            return tvm.compile(mod, target=target)

    def compile(self, input_model_path: Path, wrapper: Any = None) -> Path:
        target = self.target()
        linker = self._linker()
        mod = self.import_model(input_model_path)
        if self.tuning_trials > 0:
            self.tune(input_model_path, mod, target)
        try:
            executable = self.build(mod, target)
        except EdgeAIError:
            raise
        except Exception as error:
            raise ConversionError(f"TVM could not compile {input_model_path} for {self.target_description()} "
                                  f"({type(error).__name__}: {str(error)[:400]})") from error
        with atomic_output(self.compiled_model_path, "pass another --compiled-model-path") as library:
            # export_library picks the file kind from the name: keep ".so" at the end of the temporary's.
            with tempfile.TemporaryDirectory(prefix="edge-ai-tvm-") as tmp:
                built = Path(tmp) / "model.so"
                try:
                    executable.export_library(str(built), fcompile=linker) if linker else \
                        executable.export_library(str(built))
                except Exception as error:
                    raise ConversionError(f"linking the TVM library for {self.architecture} failed "
                                          f"({str(error)[-400:]})") from error
                shutil.copyfile(built, library)
        return self.compiled_model_path

    # -- tuning -------------------------------------------------------------------------------------
    @property
    def database_directory(self) -> Path:
        if self.tuning_database is not None:
            return Path(self.tuning_database)
        return self.compiled_model_path.with_name(self.compiled_model_path.stem + "-tuning")

    def tuning_tasks(self, mod, target):
        """MetaSchedule's tasks (one per fused operator) in the module, prepared as Relax's
        "static_shape_tuning" pipeline prepares it."""
        import tvm
        from tvm import relax
        from tvm.s_tir import meta_schedule

        with tvm.transform.PassContext(opt_level=self.opt_level), target:
            prepared = tvm.transform.Sequential([
                relax.transform.DecomposeOpsForInference(),
                relax.transform.CanonicalizeBindings(),
                relax.get_pipeline("zero"),
            ])(mod)
            return meta_schedule.relax_integration.extract_tasks(prepared, target, {})

    def key_of_tasks(self, tasks) -> dict[str, Any]:
        """What a tuning database is made for: the tasks' operators (structure and shapes, as MetaSchedule
        tells workloads apart), the target and the budget. Neither the weights' values nor the names an
        exporter gives tensors (tf2onnx's differ from one export to the next) are in it, so a model
        exported again or retrained reuses its database; reuse cannot give wrong results, as MetaSchedule
        applies a record only to an operator of the same structure."""
        import tvm_ffi

        operators = sorted((format(tvm_ffi.structural_hash(task.dispatched[0]), "x"), task.weight) for task in tasks)
        return {"tasks_sha256": hashlib.sha256(json.dumps(operators).encode()).hexdigest(), "tasks": len(tasks),
                "target": self.target_description(), "batch_size": self.batch_size,
                "tuning_trials": self.tuning_trials, "tuning_trials_per_task": self.tuning_trials_per_task,
                "tuning_time_cap_s": self.tuning_time_cap_s}

    def tuning_key(self, input_model_path: Path) -> dict[str, Any]:
        """The key (see `key_of_tasks`) of the model at `input_model_path`."""
        target = self.target()
        return self.key_of_tasks(self.tuning_tasks(self.import_model(input_model_path), target))

    def tune(self, input_model_path: Path, mod=None, target=None) -> dict[str, Any]:
        """Tune the model with MetaSchedule into `database_directory`, unless it holds this tuning already.

        Returns the tuning's record (`tuning.json` in the database's directory): what it was made for,
        the trials measured, how long it took and whether the time cap stopped it (`reused` added when
        the database was there already). A database made for other operators, target or budget is
        replaced.
        """
        target = target or self.target()
        if mod is None:
            mod = self.import_model(input_model_path)
        start = time.perf_counter()
        tasks = self.tuning_tasks(mod, target)
        directory = self.database_directory
        record_path = directory / "tuning.json"
        key = self.key_of_tasks(tasks)
        if record_path.is_file():
            try:
                record = json.loads(record_path.read_text())
            except json.JSONDecodeError:
                record = {}
            if record.get("key") == key and (directory / "database_tuning_record.json").is_file():
                log.info("reusing the tuning database %s (%s measured trials)", directory, record.get("trials"))
                return {**record, "reused": True}
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        import tvm
        from tvm.s_tir import meta_schedule

        print(f"tuning with MetaSchedule: {self.tuning_trials} trials for {self.target_description()} "
              f"(logs in {directory})", flush=True)
        # MetaSchedule with a builder whose workers live for the whole tuning (see `tuning_builder`) and a
        # scheduler that keeps the time cap (see `capped_task_scheduler`).
        builder = tuning_builder()
        cap = TimeCap(self.tuning_time_cap_s)
        # MetaSchedule rebuilds its loggers' configuration by handler name and fails on an unnamed handler
        # that someone else attached to its logger (pytest does): set those aside while it tunes.
        schedule_logger = logging.getLogger("tvm.s_tir.meta_schedule")
        unnamed = [handler for handler in schedule_logger.handlers if handler.get_name() is None]
        for handler in unnamed:
            schedule_logger.removeHandler(handler)
        try:
            with tvm.transform.PassContext(opt_level=self.opt_level), target:
                integration = meta_schedule.relax_integration
                # MetaSchedule gives the tasks their trials in order, so without a per-task limit the first
                # tasks would take the whole budget (the convolutions, last, none): spread it evenly.
                per_task = self.tuning_trials_per_task or max(1, -(-self.tuning_trials // max(1, len(tasks))))
                print(f"{len(tasks)} tuning tasks, at most {per_task} trials each", flush=True)
                if per_task * len(tasks) > self.tuning_trials:
                    log.warning("%d tasks x %d trials per task is more than the %d trials of the budget: tasks "
                                "take turns in order, so the last %d get none. Raise tuning_trials to %d or "
                                "leave tuning_trials_per_task out (the budget is then spread evenly)",
                                len(tasks), per_task, self.tuning_trials,
                                len(tasks) - -(-self.tuning_trials // per_task), per_task * len(tasks))
                contexts, weights = integration.extracted_tasks_to_tune_contexts(tasks, str(directory))
                meta_schedule.tune_tasks(tasks=contexts, task_weights=weights, work_dir=str(directory),
                                         max_trials_global=self.tuning_trials, max_trials_per_task=per_task,
                                         builder=builder, task_scheduler=capped_task_scheduler(cap))
        finally:
            builder.close()
            for handler in unnamed:
                schedule_logger.addHandler(handler)
        record = {"key": key, "trials": count_records(directory), "seconds": time.perf_counter() - start,
                  "capped": cap.reached}
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"tuned in {record['seconds']:.0f} s: {record['trials']} measured trials"
              + (f" (stopped by the {self.tuning_time_cap_s:.0f} s cap)" if cap.reached else ""), flush=True)
        return record

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described["target"] = self.target_description()
        record = self.database_directory / "tuning.json"
        if self.tuning_trials > 0 and record.is_file():
            tuning = json.loads(record.read_text())
            described["tuning"] = {"trials": tuning.get("trials"), "seconds": tuning.get("seconds"),
                                   "capped": tuning.get("capped", False)}
        return described


def reorder_schedules(mod):
    """Every unscheduled TIR function of `mod` with its reductions' loops reordered (see `reorder_loops`)."""
    import tvm
    from tvm import tirx

    scheduled = tvm.IRModule(mod.functions, attrs=mod.attrs)
    for variable, function in mod.functions.items():
        if isinstance(function, tirx.PrimFunc) and not function.attrs.get("tirx.is_scheduled", False):
            scheduled[variable] = reorder_loops(function)
    return scheduled


def reorder_loops(function):
    """One operator scheduled without tuning: loops of contiguous output innermost, so LLVM vectorizes.

    A reduction (convolution, dense) gets its reduction loops outside its innermost output loop, its
    initialisation split off; an element-wise block gets its innermost loop vectorized. Padding stays a
    block of its own: inlined, its bounds checks would sit in the inner loop and stop vectorization.
    Blocks this does not fit are left as they are.
    """
    from tvm import s_tir

    schedule = s_tir.Schedule(function)
    try:
        blocks = schedule.get_child_blocks(schedule.get_sblock("root"))
    except Exception:  # no root block: nothing of this shape
        return function
    for block in blocks:
        iterators = schedule.get(block).iter_vars
        loops = schedule.get_loops(block)
        if len(loops) != len(iterators) or not loops:
            continue
        spatial = [loop for loop, it in zip(loops, iterators) if it.iter_type == 0]
        reduction = [loop for loop, it in zip(loops, iterators) if it.iter_type == 2]
        if len(spatial) + len(reduction) != len(loops) or not spatial:
            continue
        attempt = schedule.copy()
        try:
            if reduction:
                schedule.reorder(*spatial[:-1], *reduction, spatial[-1])
                schedule.decompose_reduction(block, reduction[0])
            else:
                schedule.vectorize(spatial[-1])
        except s_tir.ScheduleError:
            schedule = attempt
    return schedule.mod["main"]


# The builder's per-candidate limit. MetaSchedule's own LocalBuilder allows 30 s, but starts new worker
# processes for every batch, and each one's first build imports TVM's tensor intrinsics (20-40 s on a
# loaded 2-core machine): its builds then time out and tuning measures nothing.
BUILD_TIMEOUT_S = 120.0
# Workers are replaced after this many builds (MetaSchedule restarts its pool for a memory leak).
BUILDS_PER_WORKER = 64


def tuning_builder(max_workers: int | None = None, timeout_s: float = BUILD_TIMEOUT_S):
    """A MetaSchedule builder whose worker processes are started once and kept for the whole tuning.

    Each candidate is built in a worker (a crash or hang costs that candidate, not the tuning) without
    TVM's tensor intrinsics, which only a build that needs them imports. On a loaded 2-core machine this
    took a digits CNN's batch of candidates from about 28 s to a few; see docs/tvm.md.
    """
    import os

    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    workers = max_workers or len(os.sched_getaffinity(0))

    @derived_object
    class KeptWorkersBuilder(PyBuilder):
        def __init__(self):
            super().__init__()
            self.pool = PopenPoolExecutor(max_workers=workers, timeout=timeout_s,
                                          maximum_process_uses=BUILDS_PER_WORKER)

        def build(self, build_inputs):
            results = []
            jobs = [(item.mod, item.target) for item in build_inputs]
            for outcome in self.pool.map_with_error_catching(lambda job: build_candidate(*job), jobs):
                if outcome.status == StatusKind.COMPLETE:
                    results.append(BuilderResult(outcome.value, None))
                elif outcome.status == StatusKind.TIMEOUT:
                    results.append(BuilderResult(None, f"build not finished within {timeout_s:.0f} s"))
                else:
                    results.append(BuilderResult(None, f"build failed: {outcome.value}"))
            return results

        def close(self):
            self.pool.shutdown()

    return KeptWorkersBuilder()


class TimeCap:
    """When a MetaSchedule tuning must stop: after `seconds` (None: never), counted from its creation."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.started = time.perf_counter()
        self.reached = False

    def passed(self) -> bool:
        if self.seconds is not None and not self.reached and time.perf_counter() - self.started >= self.seconds:
            self.reached = True
            print(f"tuning time cap of {self.seconds:.0f} s reached: keeping the trials measured so far", flush=True)
        return self.reached


def capped_task_scheduler(cap: TimeCap):
    """MetaSchedule's round-robin task scheduler that hands out no further task once `cap` has passed.

    Tasks take turns; a task's previous batch is collected (measured, added to the database) before it
    gets another, and a stop at the cap keeps all that was measured: the tuning's last step collects
    the batches still out.
    MetaSchedule's own schedulers have no time limit, and a measure callback could not stop one in time
    (callbacks run only when a task's results are collected, which its gradient scheduler defers to the
    end of its first pass over all tasks).
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.task_scheduler import PyTaskScheduler

    @derived_object
    class CappedRoundRobin(PyTaskScheduler):
        def __init__(self):
            super().__init__()
            self.last = -1
            self.sent: set[int] = set()  # tasks given out whose batch has not been collected yet

        def next_task_id(self) -> int:
            scheduler = self._outer()
            count = len(scheduler.tasks_)
            if scheduler.remaining_tasks_ == 0 or cap.passed():
                return -1
            for _ in range(count):
                self.last = (self.last + 1) % count
                if not scheduler.tasks_[self.last].is_terminated:
                    if self.last in self.sent:  # its last batch: collected (measured, into the database) first
                        self.sent.discard(self.last)
                        scheduler.join_running_task(self.last)
                        if scheduler.tasks_[self.last].is_terminated:
                            continue
                    self.sent.add(self.last)
                    return self.last
            return -1

    return CappedRoundRobin()


def build_candidate(mod, target) -> str:
    """One tuning candidate built and archived for MetaSchedule's runner (runs in a builder worker)."""
    import os
    import tempfile

    from tvm.driver import build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock
    from tvm.support.tar import tar

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    try:
        library = build(mod, target=target)
    except Exception:  # a schedule using a tensor intrinsic needs them registered: import once, retry
        import tvm.s_tir.tensor_intrin  # noqa: F401

        library = build(mod, target=target)
    path = os.path.join(tempfile.mkdtemp(prefix="edge-ai-tvm-candidate-"), "candidate." + tar.output_format)
    library.export_library(path, fcompile=tar)
    return path


def count_records(directory: Path) -> int:
    """Measured candidates in a MetaSchedule database directory: one line per tuning record."""
    path = Path(directory) / "database_tuning_record.json"
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def unsupported_model_error(path: Path, error: BaseException) -> UnsupportedModelError:
    """The importer's failure as one sentence naming the operators TVM lacks, when it says which."""
    text = str(error)
    match = UNSUPPORTED_OPERATOR.search(text)
    if match:
        operators = ", ".join(sorted({o.strip(" '\"") for o in match.group(1).split(",") if o.strip(" '\"")}))
        return UnsupportedModelError(f"TVM cannot import {path}: ONNX operator {operators} is not supported by "
                                     "tvm.relax.frontend.onnx; compile this model with another compiler or "
                                     "exclude it from this one (exclude_models)")
    return UnsupportedModelError(f"TVM cannot import {path} ({type(error).__name__}: {text.strip()[:400]}); "
                                 "compile this model with another compiler or exclude it from this one "
                                 "(exclude_models)")
