"""Oxford-IIIT Pet: the real download code against a server on loopback, and MobileNetV2 on it."""

import json

import numpy as np
import pytest
from pet_archive import BREEDS, TEST_PER_CLASS, TRAIN_PER_CLASS, ArchiveServer, build_archives, md5

from edge_ai_lib.core.errors import ChecksumMismatchError, DatasetNotFoundError, DownloadError
from edge_ai_lib.datasets.download import RemoteFile, download
from edge_ai_lib.datasets.pet_dataset import PET_ARCHIVES, PetDataset


@pytest.fixture(scope="module")
def archives():
    return build_archives()


@pytest.fixture
def server(archives):
    with ArchiveServer(archives) as running:
        yield running


def remote_files(server, archives):
    return [RemoteFile(f"{server.url}/{name}", md5(data)) for name, data in archives.items()]


def test_official_archives_and_checksums_are_the_published_ones():
    assert [(a.url, a.md5) for a in PET_ARCHIVES] == [
        ("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz", "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
        ("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz", "95a8c909bbe2e81eed6a22bccdf3f68f"),
    ]
    mirrored = PET_ARCHIVES[0].with_mirror("http://127.0.0.1:9/pets/")
    assert mirrored.url == "http://127.0.0.1:9/pets/images.tar.gz" and mirrored.md5 == PET_ARCHIVES[0].md5


def test_download_extract_classes_and_official_split(tmp_path, server, archives):
    dataset = PetDataset(tmp_path / "pets", download_dataset=True, image_size=64, archives=remote_files(server, archives))
    assert dataset.get_class_names() == [breed for breed, _, _ in BREEDS]
    assert dataset.split_size("train") == TRAIN_PER_CLASS * len(BREEDS)
    assert dataset.split_size("validation") == TEST_PER_CLASS * len(BREEDS)
    inputs, labels = next(dataset.iter_batches("validation", batch_size=4))
    assert inputs.shape == (4, 64, 64, 3) and inputs.dtype == np.float32 and inputs.max() <= 1.0
    assert set(labels) <= {0, 1, 2}
    # prepared: a second instance reads the files without asking the server again
    asked = len(server.requests)
    PetDataset(tmp_path / "pets", download_dataset=False, image_size=64)
    assert len(server.requests) == asked


def test_checksum_mismatch_is_refused_and_the_file_kept_aside(tmp_path, server, archives):
    wrong = RemoteFile(f"{server.url}/images.tar.gz", "0" * 32)
    with pytest.raises(ChecksumMismatchError) as error:
        download(wrong, tmp_path, progress=False)
    message = str(error.value)
    assert "expected MD5 " + "0" * 32 in message and md5(archives["images.tar.gz"]) in message
    assert (tmp_path / "images.tar.gz.md5-mismatch").read_bytes() == archives["images.tar.gz"]
    assert not (tmp_path / "images.tar.gz").exists()


def test_interrupted_download_resumes_with_a_range_request(tmp_path, server, archives):
    data = archives["images.tar.gz"]
    remote = RemoteFile(f"{server.url}/images.tar.gz", md5(data))
    server.cut_once["images.tar.gz"] = len(data) // 3
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download(remote, tmp_path, progress=False)
    partial = tmp_path / "images.tar.gz.part"
    assert partial.stat().st_size == len(data) // 3
    path = download(remote, tmp_path, progress=False)
    assert path.read_bytes() == data
    assert server.requests[-1] == ("images.tar.gz", f"bytes={len(data) // 3}-")
    assert not partial.exists()


def test_missing_file_on_the_server_is_an_http_error(tmp_path, server):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(RemoteFile(f"{server.url}/nothing.tar.gz", "0" * 32), tmp_path, progress=False)


def test_missing_root_without_download(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="--download-dataset"):
        PetDataset(tmp_path / "absent")


@pytest.mark.slow
def test_mobilenetv2_trains_one_epoch_and_benchmarks(tmp_path, server, archives):
    from edge_ai_lib.modelwrappers.classification.tensorflow_pet_dataset import TensorFlowPetDatasetMobileNetV2
    from edge_ai_lib.scenarios import inference_performance

    root = tmp_path / "pets"
    dataset = PetDataset(root, download_dataset=True, image_size=96, archives=remote_files(server, archives))
    model_path = tmp_path / "mobilenet.keras"
    wrapper = TensorFlowPetDatasetMobileNetV2(model_path, dataset, from_file=False, alpha=0.35)
    momenta = {layer.momentum for layer in wrapper.model.get_layer(index=1).layers if hasattr(layer, "momentum")}
    assert momenta == {0.9}
    history = wrapper.train_model(batch_size=6, learning_rate=0.001, epochs=1, logdir=tmp_path / "logs")
    assert np.isfinite(history["loss"][0])
    wrapper.save_model(model_path)

    inference_performance.main([
        "edge_ai_lib.modelwrappers.classification.tensorflow_pet_dataset.TensorFlowPetDatasetMobileNetV2",
        "edge_ai_lib.datasets.pet_dataset.PetDataset", str(tmp_path / "report"), "pets",
        "--model-path", str(model_path), "--dataset-root", str(root), "--no-download-dataset",
        "--image-size", "96", "--alpha", "0.35", "--warmup", "2"])
    document = json.loads((tmp_path / "report" / "pets.json").read_text())
    assert document["dataset"]["split"] == "validation"
    assert document["dataset"]["sample_count"] == TEST_PER_CLASS * len(BREEDS)
    assert document["quality"]["class_names"] == [breed for breed, _, _ in BREEDS]
    assert len(document["performance"]["samples_s"]) == TEST_PER_CLASS * len(BREEDS)
    assert (tmp_path / "report" / "pets-confusion-matrix.png").stat().st_size > 1000


def test_weights_file_must_match_its_checksum(tmp_path, server, archives):
    from edge_ai_lib.core.errors import ModelLoadError
    from edge_ai_lib.modelwrappers.classification.tensorflow_pet_dataset import TensorFlowPetDatasetMobileNetV2

    dataset = PetDataset(tmp_path / "pets", download_dataset=True, image_size=96, archives=remote_files(server, archives))
    weights = tmp_path / "backbone.weights.h5"
    weights.write_bytes(b"not the weights")
    with pytest.raises(ModelLoadError, match="expected " + "a" * 64):
        TensorFlowPetDatasetMobileNetV2(tmp_path / "m.keras", dataset, from_file=False, alpha=0.35,
                                        weights=str(weights), weights_sha256="a" * 64)
    with pytest.raises(ModelLoadError, match="no checksum"):
        TensorFlowPetDatasetMobileNetV2(tmp_path / "m.keras", dataset, from_file=False, alpha=0.35,
                                        weights=str(weights))


def test_local_weights_with_matching_checksum_are_loaded(tmp_path, server, archives):
    import hashlib

    import keras

    from edge_ai_lib.modelwrappers.classification.tensorflow_pet_dataset import TensorFlowPetDatasetMobileNetV2

    dataset = PetDataset(tmp_path / "pets", download_dataset=True, image_size=96, archives=remote_files(server, archives))
    keras.utils.set_random_seed(3)
    backbone = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    weights = tmp_path / "backbone.weights.h5"
    backbone.save_weights(weights)
    (tmp_path / "backbone.weights.h5.sha256").write_text(hashlib.sha256(weights.read_bytes()).hexdigest() + "\n")
    wrapper = TensorFlowPetDatasetMobileNetV2(tmp_path / "m.keras", dataset, from_file=False, alpha=0.35,
                                              weights=str(weights))
    loaded = wrapper.model.get_layer(index=1).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(loaded, backbone.get_weights()))


def test_a_local_directory_is_a_mirror(tmp_path, archives):
    """--dataset-mirror DIR: the archives are read from a local copy, checksums still checked."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, data in archives.items():
        (mirror / name).write_bytes(data)
    official = [RemoteFile(f"https://unreachable.invalid/pets/{name}", md5(data)) for name, data in archives.items()]
    dataset = PetDataset(tmp_path / "pets", download_dataset=True, image_size=64, archives=official,
                         dataset_mirror=str(mirror))
    assert all(remote.url.startswith("file://") for remote in dataset.archives)
    assert dataset.split_size("train") == TRAIN_PER_CLASS * len(BREEDS)


def test_the_pet_example_runs_offline_from_a_generated_mirror(tmp_path):
    """The README's offline Pet path: the generator writes a tiny mirror with its MD5SUMS, and the
    preparation scenario reads it from the directory (no network), checking those checksums."""
    from conftest import run_module

    mirror = tmp_path / "pet-mirror"
    generated = run_module("edge_ai_lib.datasets.pet_mirror", mirror, "--train-per-breed", "4",
                           "--test-per-breed", "2")
    assert generated.returncode == 0, generated.stderr
    assert f"--dataset-checksums {mirror / 'MD5SUMS'}" in generated.stdout
    listed = dict(line.split()[::-1] for line in (mirror / "MD5SUMS").read_text().splitlines())
    assert listed == {name: md5((mirror / name).read_bytes()) for name in ("images.tar.gz", "annotations.tar.gz")}
    prepared = run_module("edge_ai_lib.scenarios.dataset_preparation", "edge_ai_lib.datasets.pet_dataset.PetDataset",
                          "--dataset-root", tmp_path / "pets", "--dataset-mirror", mirror,
                          "--dataset-checksums", mirror / "MD5SUMS", "--image-size", "32")
    assert prepared.returncode == 0, prepared.stderr
    summary = json.loads(prepared.stdout.strip().splitlines()[-1])
    assert summary["classes"] == len(BREEDS) and summary["splits"] == {"train": 4 * len(BREEDS),
                                                                        "validation": 2 * len(BREEDS)}


def test_a_checksums_file_without_an_archive_is_refused(tmp_path, archives):
    from edge_ai_lib.core.errors import DatasetError

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, data in archives.items():
        (mirror / name).write_bytes(data)
    (mirror / "MD5SUMS").write_text(f"{md5(archives['images.tar.gz'])}  images.tar.gz\n")
    with pytest.raises(DatasetError, match="lists no checksum for annotations.tar.gz"):
        PetDataset(tmp_path / "pets", download_dataset=True, image_size=32, dataset_mirror=str(mirror),
                   dataset_checksums=str(mirror / "MD5SUMS"))
