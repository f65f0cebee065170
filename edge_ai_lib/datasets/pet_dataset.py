"""The Oxford-IIIT Pet dataset: 37 cat and dog breeds, with its official trainval/test split."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.dataset import Dataset
from edge_ai_lib.core.errors import DatasetError
from edge_ai_lib.datasets.download import RemoteFile, disk_space_check, download, extract_tar

PET_ARCHIVES = (
    RemoteFile("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
               "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
    RemoteFile("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
               "95a8c909bbe2e81eed6a22bccdf3f68f"),
)
SPACE_NEEDED = 2_000_000_000


def read_checksums(path: Path, archives: Sequence[RemoteFile]) -> list[str]:
    """The MD5 of each of `archives` (by file name) from an md5sum-style file.

    Raises
    ------
    DatasetError
        The file cannot be read, a line is not 'MD5  NAME', or an archive is not listed.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DatasetError(f"cannot read the checksums file {path} ({error.strerror}): pass the MD5SUMS file "
                           "written beside the mirror's archives") from error
    listed = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not re.fullmatch(r"[0-9a-fA-F]{32}", fields[0]):
            raise DatasetError(f"{path}:{number}: expected 'MD5  NAME' (md5sum's format), got '{line.strip()}'")
        listed[fields[1].lstrip("*")] = fields[0].lower()
    missing = [archive.filename for archive in archives if archive.filename not in listed]
    if missing:
        raise DatasetError(f"{path} lists no checksum for {', '.join(missing)}: add it (md5sum {missing[0]})")
    return [listed[archive.filename] for archive in archives]


class PetDataset(Dataset):
    """Oxford-IIIT Pet, classified by breed (37 classes).

    `annotations/list.txt` gives `image class_id species breed_id` per image; `trainval.txt` and
    `test.txt` give the official split, used here as the train and validation splits. Inputs are RGB
    float32 in [0, 1], resized to `image_size` x `image_size`.

    `archives` (a sequence of RemoteFile) says what to download: the official archives by default.
    """

    arguments = (
        Argument("image_size", int, 224, "Side of the square input images given to the model"),
        Argument("dataset_mirror", str, None,
                 "Base URL of a mirror holding the same archives, or a local directory with a copy of them "
                 "(checksums are still checked)"),
        Argument("dataset_checksums", str, None,
                 "A file of MD5 checksums in md5sum's format ('MD5  NAME' per line) that replaces the published "
                 "ones: for a mirror of other archives, such as the tiny one `python -m "
                 "edge_ai_lib.datasets.pet_mirror DIR` writes"),
    )

    def __init__(self, root: Path | None = None, archives: Sequence[RemoteFile] = PET_ARCHIVES, **settings: Any):
        self.official_archives = list(archives)
        self.class_names: list[str] = []
        super().__init__(root, **settings)

    def prepare(self) -> None:
        archives = self.official_archives
        if self.dataset_checksums:
            archives = [RemoteFile(archive.url, checksum) for archive, checksum in
                        zip(archives, read_checksums(Path(self.dataset_checksums), archives))]
        self.archives = [archive.with_mirror(self.dataset_mirror) for archive in archives]
        super().prepare()

    def is_prepared(self) -> bool:
        return (self.root / "annotations" / "list.txt").is_file() and (self.root / "images").is_dir()

    def download_dataset(self) -> None:
        disk_space_check(self.root, SPACE_NEEDED if self.archives == list(PET_ARCHIVES) else 0)
        downloads = self.root / "downloads"
        for archive in self.archives:
            path = download(archive, downloads)
            extract_tar(path, self.root)
        if not self.is_prepared():
            raise DatasetError(f"the archives did not contain images/ and annotations/list.txt under "
                               f"{self.root}: check the mirror's archives")

    @staticmethod
    def _read_list(path: Path) -> list[tuple[str, int]]:
        entries = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) < 2 or not fields[1].isdigit():
                raise DatasetError(f"{path}:{number}: expected 'image class_id species breed_id', got "
                                   f"'{line.strip()}': the annotations are corrupt; delete them and download again")
            entries.append((fields[0], int(fields[1])))
        return entries

    def load_samples(self) -> None:
        annotations = self.root / "annotations"
        entries = self._read_list(annotations / "list.txt")
        names: dict[int, str] = {}
        for image, class_id in entries:
            names.setdefault(class_id, re.sub(r"_\d+$", "", image))
        ids = sorted(names)
        index_of = {class_id: i for i, class_id in enumerate(ids)}
        self.class_names = [names[class_id] for class_id in ids]
        self.sample_refs = [self.root / "images" / f"{image}.jpg" for image, _ in entries]
        self.labels = np.array([index_of[class_id] for _, class_id in entries], dtype=np.int64)
        missing = [p for p in self.sample_refs if not p.is_file()]
        if missing:
            raise DatasetError(f"{len(missing)} images listed in list.txt are missing (e.g. {missing[0]}): "
                               "delete the dataset root and prepare it again")
        self._position = {image: i for i, (image, _) in enumerate(entries)}

    def make_splits(self) -> dict[str, np.ndarray]:
        splits = {}
        for split, filename in (("train", "trainval.txt"), ("validation", "test.txt")):
            path = self.root / "annotations" / filename
            if not path.is_file():
                return super().make_splits()
            splits[split] = np.array(sorted(self._position[image] for image, _ in self._read_list(path)
                                            if image in self._position), dtype=np.int64)
        return splits

    def prepare_input_samples(self, refs: Sequence[Any]) -> np.ndarray:
        from PIL import Image

        batch = np.empty((len(refs), self.image_size, self.image_size, 3), dtype=np.float32)
        for i, path in enumerate(refs):
            try:
                with Image.open(path) as image:
                    image = image.convert("RGB").resize((self.image_size, self.image_size), Image.BILINEAR)
                    batch[i] = np.asarray(image, dtype=np.float32) / 255.0
            except OSError as error:
                raise DatasetError(f"cannot read image {path} ({error}): delete the dataset root and "
                                   "prepare it again") from error
        return batch

    def get_class_names(self) -> list[str]:
        return list(self.class_names)
