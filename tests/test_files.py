"""Writes that fail: full disks, planted symlinks, other file systems, interruptions.

Real files on real mounts: each test mounts its own small tmpfs (we are root here and in CI) so that a
full disk is a real ENOSPC from the kernel, and a write "elsewhere" really crosses file systems.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import DIGITS, TORCH_DIGITS, missing, run_module
from pet_archive import ArchiveServer, build_archives, md5
from protocol_helpers import tiny_onnx_model

from edge_ai_lib.core.errors import StorageError
from edge_ai_lib.core.files import atomic_output, atomic_write_bytes, atomic_write_text, disk_is_full, free_bytes
from edge_ai_lib.core.provenance import collect_provenance
from edge_ai_lib.core.quality import classification_quality
from edge_ai_lib.core.results import build_result, write_result
from edge_ai_lib.core.timing import TimingRecord


@pytest.fixture
def mount_tmpfs(tmp_path):
    """Mount a fresh tmpfs of the given size inside tmp_path; everything is unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str = "256k", name: str = "disk") -> Path:
        directory = tmp_path / name
        directory.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(directory)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            missing(f"cannot mount a tmpfs ({result.stderr.strip()}): these tests need root, as in CI")
        mounted.append(directory)
        return directory

    yield mount
    for directory in reversed(mounted):
        if subprocess.run(["umount", str(directory)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], check=True)


def fill(directory: Path, leave: int = 0) -> Path:
    """Fill the file system holding `directory` with a ballast file, leaving about `leave` bytes free."""
    ballast = directory / "ballast"
    handle = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        block = b"\xff" * 4096
        while free_bytes(directory) > leave:
            try:
                os.write(handle, block)
            except OSError as error:
                assert error.errno == errno.ENOSPC
                break
    finally:
        os.close(handle)
    return ballast


def files_under(directory: Path) -> set[str]:
    """Every file (not directory) below `directory`, hidden ones included, relative to it."""
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if not p.is_dir()}


def result_document() -> dict:
    record = TimingRecord(warmup_count=0)
    for seconds in (0.3, 0.01, 0.011, 0.012):
        record.add(seconds)
    quality = classification_quality(np.eye(2), np.array([0, 1]), ["x", "y"])
    return build_result(
        "inference_performance",
        {"wrapper": "w", "framework": "f", "framework_version": "1", "path": "p", "size_bytes": 3},
        {"class": "d", "split": "validation", "sample_count": 2}, quality, record,
        collect_provenance({"x": 1}))


def big_onnx_model(path: Path, outputs: int = 100_000) -> None:
    """A 4 -> `outputs` MatMul (about 1.6 MB of weights): too big for a 256 KiB tmpfs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["output"])], "big",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", outputs])],
        [numpy_helper.from_array(np.ones((4, outputs), np.float32), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


# -- atomic writes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("write", [atomic_write_text, lambda path, text: atomic_write_bytes(path, text.encode())],
                         ids=["text", "bytes"])
def test_full_disk_keeps_the_old_file_and_says_so(mount_tmpfs, write):
    disk = mount_tmpfs()
    target = disk / "result.json"
    write(target, "old content")
    fill(disk)
    with pytest.raises(StorageError) as raised:
        write(target, "new content " * 1000)
    message = str(raised.value)
    assert message.startswith(f"cannot write {target}: no space left on the device holding {disk} (")
    assert message.endswith("bytes free): free space or write the results elsewhere")
    assert target.read_text() == "old content"
    assert files_under(disk) == {"result.json", "ballast"}


def test_a_file_larger_than_the_free_space_leaves_nothing(mount_tmpfs):
    disk = mount_tmpfs("256k")
    target = disk / "deep" / "model.bin"
    with pytest.raises(StorageError, match="no space left on the device holding .*deep"):
        atomic_write_bytes(target, b"\0" * 600_000)
    assert files_under(disk) == set()


def test_the_free_space_reported_is_what_is_left_after_the_cleanup(mount_tmpfs):
    disk = mount_tmpfs("256k")
    with pytest.raises(StorageError) as raised:
        atomic_write_bytes(disk / "big.bin", b"\0" * 600_000)
    assert f"({256 * 1024} bytes free)" in str(raised.value)


def test_interrupted_writer_leaves_nothing_and_the_old_file(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_text("previous model")
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as temporary:
        temporary.write_text("half a mod")
        raise KeyboardInterrupt
    assert target.read_text() == "previous model"
    assert files_under(tmp_path) == {"model.onnx"}


def test_temporary_keeps_the_suffix_and_lives_beside_the_target(tmp_path):
    with atomic_output(tmp_path / "sub" / "model.keras") as temporary:
        assert temporary.parent == tmp_path / "sub" and temporary.suffix == ".keras"
        temporary.write_text("x")
    assert (tmp_path / "sub" / "model.keras").read_text() == "x"


def test_new_files_get_the_usual_permissions_and_replaced_files_keep_theirs(tmp_path):
    fresh = atomic_write_text(tmp_path / "fresh.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    kept = tmp_path / "kept.json"
    kept.write_text("{}")
    kept.chmod(0o640)
    atomic_write_text(kept, "[]")
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "[]"


def test_read_only_file_system_is_one_sentence(mount_tmpfs):
    disk = mount_tmpfs()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    with pytest.raises(StorageError) as raised:
        atomic_write_text(disk / "r.json", "{}")
    assert str(raised.value) == (f"cannot write {disk / 'r.json'}: the file system holding {disk} is read-only: "
                                 "remount it read-write or write the results elsewhere")


def test_parent_that_is_a_file_is_one_sentence(tmp_path):
    (tmp_path / "results").write_text("not a directory")
    with pytest.raises(StorageError, match="a part of .*results/run is a file, not a directory"):
        atomic_write_text(tmp_path / "results" / "run" / "r.json", "{}")


def test_disk_is_full_probe(mount_tmpfs):
    disk = mount_tmpfs("256k")
    assert not disk_is_full(disk)
    fill(disk, leave=8192)
    assert disk_is_full(disk / "not" / "yet" / "made")
    assert files_under(disk) == {"ballast"}


# -- planted symbolic links ------------------------------------------------------------------------

PREDICTABLE = ("{name}.part", "{name}.tmp", "{stem}.tmp{suffix}", "{name}.tmp{suffix}", ".{name}.tmp")


@pytest.mark.parametrize("planted", ("{name}",) + PREDICTABLE)
def test_planted_symlinks_are_never_followed(tmp_path, planted):
    outside = tmp_path / "outside.txt"
    outside.write_text("must stay")
    directory = tmp_path / "results"
    directory.mkdir()
    target = directory / "model.tflite"
    link = directory / planted.format(name=target.name, stem=target.stem, suffix=target.suffix)
    link.symlink_to(outside)
    atomic_write_bytes(target, b"compiled model")
    assert outside.read_text() == "must stay"
    assert target.read_bytes() == b"compiled model" and not target.is_symlink()
    leftovers = files_under(directory) - {target.name, link.name}
    assert leftovers == set()


def test_result_and_plots_do_not_follow_links_at_the_old_temporary_names(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("must stay")
    out = tmp_path / "report"
    out.mkdir()
    for name in ("run.json.tmp", "run.json.part", "run-inference-time.png.tmp"):
        (out / name).symlink_to(outside)
    from edge_ai_lib.plots import write_run_outputs

    write_run_outputs(out, "run", result_document())
    assert outside.read_text() == "must stay"
    assert json.loads((out / "run.json").read_text())["kind"] == "inference_performance"


# -- another file system than the temporary directory ---------------------------------------------

@pytest.mark.parametrize("quantization", ["none", "dynamic"])
def test_onnxruntime_compiler_writes_onto_another_file_system(mount_tmpfs, tmp_path, quantization):
    import onnxruntime

    from edge_ai_lib.compilers.onnxruntime import ONNXRuntimeCompiler

    disk = mount_tmpfs("4m")
    source = tmp_path / "tiny.onnx"
    weights = tiny_onnx_model(source)
    compiled = disk / "compiled" / "model.onnx"
    assert os.stat(disk).st_dev != os.stat(tmp_path).st_dev
    ONNXRuntimeCompiler(None, compiled, quantization=quantization).compile(source)
    assert files_under(disk) == {"compiled/model.onnx"}
    session = onnxruntime.InferenceSession(str(compiled), providers=["CPUExecutionProvider"])
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], x @ weights + 1, atol=0.05)


def test_onnxruntime_compiler_on_a_too_small_disk_says_it_is_full(mount_tmpfs, tmp_path):
    from edge_ai_lib.compilers.onnxruntime import ONNXRuntimeCompiler

    disk = mount_tmpfs("256k")
    source = tmp_path / "big.onnx"
    big_onnx_model(source)
    compiled = disk / "model.onnx"
    with pytest.raises(StorageError) as raised:
        ONNXRuntimeCompiler(None, compiled).compile(source)
    assert str(raised.value).startswith(f"cannot write {compiled}: no space left on the device holding {disk} (")
    assert str(raised.value).endswith("free space or pass another --compiled-model-path")
    assert files_under(disk) == set()


# -- results and plots -----------------------------------------------------------------------------

def test_write_result_on_a_full_disk(mount_tmpfs):
    disk = mount_tmpfs()
    fill(disk)
    with pytest.raises(StorageError, match=f"no space left on the device holding {disk}/bench"):
        write_result(disk / "bench" / "run.json", result_document())
    assert files_under(disk) == {"ballast"}


def test_a_plot_on_a_full_disk(mount_tmpfs):
    from edge_ai_lib.plots import draw_latency_histogram, save_figure

    disk = mount_tmpfs()
    fill(disk)
    with pytest.raises(StorageError, match=f"cannot write {disk}/h.png: no space left"):
        save_figure(draw_latency_histogram([0.001, 0.002, 0.003], "latency"), disk / "h.png")
    assert files_under(disk) == {"ballast"}


@pytest.mark.parametrize("files_that_fit", [0, 1, 3])
def test_run_outputs_are_all_or_nothing_on_a_full_disk(mount_tmpfs, tmp_path, files_that_fit):
    """Room for no file, for the first plot, or for every plot but not the result: nothing of this
    run is left, and the previous run's files are intact."""
    from edge_ai_lib.plots import write_run_outputs

    result, plot_paths = write_run_outputs(tmp_path / "measure", "run", result_document())
    page = 4096
    room = sum(-(-p.stat().st_size // page) * page for p in [*plot_paths, result][:files_that_fit])
    disk = mount_tmpfs("512k")
    previous = {"run.json": "previous result", "run-inference-time.png": "previous plot"}
    for name, text in previous.items():
        (disk / name).write_text(text)
    fill(disk, leave=room)
    with pytest.raises(StorageError, match="no space left on the device holding"):
        write_run_outputs(disk, "run", result_document())
    assert files_under(disk) == set(previous) | {"ballast"}
    assert all((disk / name).read_text() == text for name, text in previous.items())


def test_run_outputs_interrupted_while_plotting_leave_the_previous_run(tmp_path, monkeypatch):
    from edge_ai_lib import plots

    (tmp_path / "run.json").write_text("previous result")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "draw_confusion_matrix", interrupted)
    with pytest.raises(KeyboardInterrupt):
        plots.write_run_outputs(tmp_path, "run", result_document())
    assert files_under(tmp_path) == {"run.json"}
    assert (tmp_path / "run.json").read_text() == "previous result"


def test_run_outputs_write_the_result_last(tmp_path):
    from edge_ai_lib.plots import write_run_outputs

    result, plot_paths = write_run_outputs(tmp_path, "run", result_document())
    assert result == tmp_path / "run.json" and len(plot_paths) == 3
    assert all(p.stat().st_mtime_ns <= result.stat().st_mtime_ns for p in plot_paths)
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in plot_paths)
    assert files_under(tmp_path) == {"run.json", *(p.name for p in plot_paths)}


# -- datasets --------------------------------------------------------------------------------------

def test_preparing_digits_on_a_full_disk(mount_tmpfs):
    from edge_ai_lib.datasets.digits import DigitsDataset

    disk = mount_tmpfs()
    fill(disk)
    with pytest.raises(StorageError, match="no space left .* free space or choose another --dataset-root"):
        DigitsDataset(disk / "digits")
    assert files_under(disk) == {"ballast"}


def test_extracting_onto_a_too_small_disk_leaves_no_half_dataset(mount_tmpfs, tmp_path):
    from edge_ai_lib.datasets.download import extract_tar

    archive = tmp_path / "images.tar.gz"
    archive.write_bytes(build_archives()["images.tar.gz"])
    disk = mount_tmpfs("64k")
    with pytest.raises(StorageError) as raised:
        extract_tar(archive, disk / "pets")
    assert str(raised.value).startswith(f"cannot extract {archive} into {disk / 'pets'}: no space left on the "
                                        f"device holding {disk / 'pets'} (")
    assert files_under(disk) == set()


def test_download_onto_a_full_disk_keeps_only_the_resumable_part(mount_tmpfs):
    from edge_ai_lib.datasets.download import RemoteFile, download

    archives = build_archives()
    disk = mount_tmpfs("64k")
    with ArchiveServer(archives) as server:
        remote = RemoteFile(f"{server.url}/images.tar.gz", md5(archives["images.tar.gz"]))
        with pytest.raises(StorageError) as raised:
            download(remote, disk / "downloads", progress=False)
    part = disk / "downloads" / "images.tar.gz.part"
    assert str(raised.value) == (
        f"cannot write {part}: no space left on the device holding {part.parent} (0 bytes free): free space or "
        f"choose another --dataset-root; the partial file {part} is kept: run the same command again to resume")
    assert files_under(disk) == {"downloads/images.tar.gz.part"}


def test_download_refuses_a_link_planted_at_its_partial_file(tmp_path):
    from edge_ai_lib.datasets.download import RemoteFile, download

    outside = tmp_path / "outside.txt"
    outside.write_text("must stay")
    part = tmp_path / "downloads" / "images.tar.gz.part"
    part.parent.mkdir()
    part.symlink_to(outside)
    archives = build_archives()
    with ArchiveServer(archives) as server:
        remote = RemoteFile(f"{server.url}/images.tar.gz", md5(archives["images.tar.gz"]))
        with pytest.raises(StorageError, match="is a symbolic link, which is not followed: remove the link"):
            download(remote, part.parent, progress=False)
    assert outside.read_text() == "must stay"


# -- scenarios as a user runs them -----------------------------------------------------------------

def assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), last
    for fragment in fragments:
        assert fragment in last, last


def test_inference_performance_into_a_full_disk(mount_tmpfs, trained_torch_digits, digits):
    wrapper, _ = trained_torch_digits
    disk = mount_tmpfs()
    fill(disk)
    report = disk / "report"
    result = run_module("edge_ai_lib.scenarios.inference_performance", TORCH_DIGITS, DIGITS, report, "digits",
                        "--model-path", wrapper.model_path, "--dataset-root", digits.root, "--max-samples", "30",
                        "--warmup", "2")
    assert_one_error_line(result, f"no space left on the device holding {report}",
                          "free space or write the results elsewhere")
    assert files_under(disk) == {"ballast"}


def test_onnx_export_into_a_full_disk(mount_tmpfs, trained_torch_digits):
    wrapper, _ = trained_torch_digits
    disk = mount_tmpfs()
    fill(disk)
    result = run_module("edge_ai_lib.scenarios.onnx_export", TORCH_DIGITS, "--model-path", wrapper.model_path,
                        "--onnx-path", disk / "model.onnx")
    assert_one_error_line(result, f"cannot write {disk / 'model.onnx'}: no space left on the device holding {disk}",
                          "free space or write the ONNX file elsewhere")
    assert files_under(disk) == {"ballast"}


def test_model_compilation_onto_another_file_system_and_onto_a_full_one(mount_tmpfs, trained_torch_digits, digits):
    wrapper, _ = trained_torch_digits
    roomy, small = mount_tmpfs("16m", "roomy"), mount_tmpfs("256k", "small")
    fill(small, leave=8192)
    arguments = [TORCH_DIGITS, "edge_ai_lib.compilers.onnxruntime.ONNXRuntimeCompiler", DIGITS,
                 "--model-path", wrapper.model_path, "--dataset-root", digits.root]
    done = run_module("edge_ai_lib.scenarios.model_compilation", *arguments,
                      "--compiled-model-path", roomy / "model.onnx")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((roomy / "model.onnx.json").read_text())["size_bytes"] == (roomy / "model.onnx").stat().st_size
    assert files_under(roomy) == {"model.onnx", "model.onnx.json", "model-source.onnx"}
    failed = run_module("edge_ai_lib.scenarios.model_compilation", *arguments,
                        "--compiled-model-path", small / "model.onnx")
    assert_one_error_line(failed, "no space left on the device holding")
    assert files_under(small) == {"ballast"}
