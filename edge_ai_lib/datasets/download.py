"""Downloads with checksums, resume (HTTP Range) and safe extraction."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edge_ai_lib.core.errors import ChecksumMismatchError, DownloadError, StorageError
from edge_ai_lib.core.files import disk_is_full, free_bytes, write_failure

log = logging.getLogger(__name__)
CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    url: str
    md5: str

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def with_mirror(self, mirror: str | None) -> "RemoteFile":
        """The same file (same checksum) from another base URL, or from a local directory (a path, or a
        file:// URL) holding a copy."""
        if not mirror:
            return self
        if "://" not in mirror:
            mirror = Path(mirror).expanduser().resolve().as_uri()
        return RemoteFile(mirror.rstrip("/") + "/" + self.filename, self.md5)


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(remote: RemoteFile, directory: Path, timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch `remote` into `directory`, resuming a partial `.part` file, and verify its MD5.

    A finished file whose checksum already matches is not fetched again. A mismatch keeps the
    received bytes aside (`<name>.md5-mismatch`) for inspection and raises ChecksumMismatchError.
    Unlike other outputs the `.part` file is deliberately kept after a failure (network or full disk),
    because archives are large and resuming is cheaper than starting over; a symbolic link planted at
    its name is refused, never followed.
    """
    from tqdm import tqdm

    directory = Path(directory)
    target = directory / remote.filename
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_failure(target, error, "choose another --dataset-root") from error
    if target.is_file() and file_md5(target) == remote.md5:
        return target
    partial = target.with_name(target.name + ".part")
    offset = partial.stat().st_size if partial.is_file() and not partial.is_symlink() else 0
    request = urllib.request.Request(remote.url, headers={"User-Agent": "edge_ai_lib"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            response = None  # the partial file is already complete
        else:
            raise DownloadError(f"downloading {remote.url} failed: HTTP {error.code} {error.reason}; "
                                "check the URL (or --dataset-mirror) and try again") from error
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"cannot reach {remote.url} ({error}): check the network or use "
                            "--dataset-mirror with a reachable copy") from error
    except (ValueError, http.client.HTTPException) as error:  # InvalidURL: spaces, control characters, a bad port
        raise DownloadError(f"{remote.url} is not a valid URL ({error}): check --dataset-mirror") from error
    if response is not None:
        with response:
            resumed = offset and response.status == 206
            if offset and not resumed:
                log.info("server ignored the Range request for %s: downloading from the start", remote.url)
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            received = 0
            try:
                with _open_partial(partial, append=bool(resumed)) as handle, \
                        tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=remote.filename,
                             disable=not progress) as bar:
                    while True:
                        try:
                            block = response.read(CHUNK)
                        except (OSError, http.client.HTTPException) as error:
                            raise DownloadError(
                                f"download of {remote.url} was interrupted after {offset + received} bytes "
                                f"({error}); the partial file {partial} is kept: run the same command again to "
                                "resume") from error
                        if not block:
                            break
                        handle.write(block)
                        received += len(block)
                        bar.update(len(block))
            except OSError as error:
                failure = write_failure(partial, error, "choose another --dataset-root")
                kept = f"; the partial file {partial} is kept: run the same command again to resume" \
                    if partial.is_file() and not partial.is_symlink() else ""
                raise StorageError(f"{failure}{kept}") from error
            if length is not None and received < int(length):
                raise DownloadError(
                    f"download of {remote.url} ended early: {offset + received} of {total} bytes; the partial "
                    f"file {partial} is kept: run the same command again to resume")
    actual = file_md5(partial)
    if actual != remote.md5:
        rejected = target.with_name(target.name + ".md5-mismatch")
        os.replace(partial, rejected)
        raise ChecksumMismatchError(
            f"checksum mismatch for {remote.url}: expected MD5 {remote.md5}, got {actual}; the file was moved "
            f"to {rejected} for inspection: delete it and download again, or check the mirror")
    os.replace(partial, target)
    return target


def _open_partial(partial: Path, append: bool):
    """Open the resumable `.part` file without following a symbolic link planted at its name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(os.open(partial, flags, 0o666), "ab" if append else "wb")


def extract_tar(archive: Path, destination: Path) -> None:
    """Unpack a tar archive, refusing members that would land outside `destination`.

    Members are unpacked into a hidden staging directory inside `destination` and moved into place
    only when the whole archive is out, so a full disk or a corrupt archive never leaves half a
    dataset that would later pass for a prepared one.
    """
    archive, destination = Path(archive), Path(destination)
    elsewhere = "choose another --dataset-root"
    try:
        destination.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{archive.name[:64]}.", dir=destination))
    except OSError as error:
        raise write_failure(destination / archive.name, error, elsewhere) from error
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, OSError) as error:
            if disk_is_full(staging):
                shutil.rmtree(staging, ignore_errors=True)
                raise StorageError(f"cannot extract {archive} into {destination}: no space left on the device "
                                   f"holding {destination} ({free_bytes(destination)} bytes free): free space "
                                   f"or {elsewhere}") from error
            raise DownloadError(f"cannot extract {archive} ({error}): delete it and download again") from error
        for entry in sorted(staging.iterdir()):
            target = destination / entry.name
            try:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists() or target.is_symlink():
                    target.unlink()
                os.replace(entry, target)
            except OSError as error:
                raise write_failure(target, error, elsewhere) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def disk_space_check(directory: Path, needed_bytes: int) -> None:
    free = free_bytes(directory)
    if free < needed_bytes:
        raise DownloadError(f"not enough disk space in {directory}: {needed_bytes / 1e9:.1f} GB needed, "
                            f"{free / 1e9:.1f} GB free; free some space or choose another --dataset-root")
