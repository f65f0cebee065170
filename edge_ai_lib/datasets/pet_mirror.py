"""A tiny local mirror of the Oxford-IIIT Pet archives, to try the Pet example offline in a minute.

    python -m edge_ai_lib.datasets.pet_mirror build/pet-mirror [--per-breed 9]

writes `images.tar.gz` and `annotations.tar.gz` in the official layout (3 breeds of generated images,
each breed one colour, the official trainval/test split files) and `MD5SUMS`, their checksums in
md5sum's format. The dataset reads them with

    --dataset-mirror build/pet-mirror --dataset-checksums build/pet-mirror/MD5SUMS

(the published checksums stay the default: a mirror of the real archives needs no checksums file).
The images are synthetic: a model learns them in an epoch or two, which says nothing of the real
dataset's accuracy.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
from pathlib import Path
from typing import Sequence

import numpy as np

# (breed as in image names, class_id, species: 1 cat, 2 dog), as in the official list.txt
BREEDS = (("Abyssinian", 1, 1), ("american_bulldog", 2, 2), ("Bengal", 6, 1))
COLOURS = ((200, 60, 60), (60, 200, 60), (60, 60, 200))
CHECKSUMS_FILE = "MD5SUMS"


def _jpeg(colour: tuple[int, int, int], seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.normal(0, 25, (80, 100, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_archives(train_per_breed: int = 6, test_per_breed: int = 3) -> dict[str, bytes]:
    """{"images.tar.gz": ..., "annotations.tar.gz": ...}: the 3 breeds of BREEDS, the official layout and
    split files (the first `train_per_breed` images of each breed in trainval.txt, the rest in test.txt)."""
    images, listing, trainval, test = {}, [], [], []
    for (breed, class_id, species), colour in zip(BREEDS, COLOURS):
        for n in range(1, train_per_breed + test_per_breed + 1):
            name = f"{breed}_{n}"
            images[f"images/{name}.jpg"] = _jpeg(colour, seed=class_id * 100 + n)
            line = f"{name} {class_id} {species} {n}"
            listing.append(line)
            (trainval if n <= train_per_breed else test).append(line)
    header = "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n"
    annotations = {
        "annotations/list.txt": (header + "\n".join(listing) + "\n").encode(),
        "annotations/trainval.txt": ("\n".join(trainval) + "\n").encode(),
        "annotations/test.txt": ("\n".join(test) + "\n").encode(),
    }
    return {"images.tar.gz": _tar_gz(images), "annotations.tar.gz": _tar_gz(annotations)}


def write_mirror(directory: Path, train_per_breed: int = 6, test_per_breed: int = 3) -> Path:
    """Write the archives and their MD5SUMS into `directory`; returns the checksums file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, data in build_archives(train_per_breed, test_per_breed).items():
        (directory / name).write_bytes(data)
        lines.append(f"{hashlib.md5(data).hexdigest()}  {name}")
    checksums = directory / CHECKSUMS_FILE
    checksums.write_text("\n".join(lines) + "\n")
    return checksums


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("directory", type=Path, help="Where to write the archives and MD5SUMS")
    parser.add_argument("--train-per-breed", type=int, default=6, help="Images per breed in trainval.txt")
    parser.add_argument("--test-per-breed", type=int, default=3, help="Images per breed in test.txt")
    args = parser.parse_args(argv)
    if args.train_per_breed < 1 or args.test_per_breed < 1:
        parser.error("--train-per-breed and --test-per-breed must be at least 1")
    checksums = write_mirror(args.directory, args.train_per_breed, args.test_per_breed)
    print(f"wrote {args.directory}/images.tar.gz, annotations.tar.gz and {checksums.name}: use "
          f"--dataset-mirror {args.directory} --dataset-checksums {checksums}")


if __name__ == "__main__":
    sys.exit(main())
