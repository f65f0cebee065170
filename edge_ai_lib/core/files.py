"""Writing files so that a failed write leaves the previous file or nothing, never half of one.

Every file the library produces is written into a fresh temporary in the destination's own directory
and renamed onto its name only once it is complete. The temporary is created with
`tempfile.mkstemp` (O_CREAT|O_EXCL, random name), so a symbolic link planted at a predictable name is
never followed, and it lives on the destination's file system, so the rename never crosses devices.
On any failure, Ctrl-C included, the temporary is removed.

A failed write becomes one `StorageError` sentence naming the file and the fix. Libraries that
write files themselves (protobuf in ONNX Runtime, TensorFlow, torch.save) often fail on a full disk
with errors that carry no errno; `disk_is_full` tells those cases apart with a small probe write,
made while the failed temporary still holds its space.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from edge_ai_lib.core.errors import EdgeAIError, StorageError

ELSEWHERE = "write the results elsewhere"
PROBE_BYTES = 64 * 1024

_SPACE = {errno.ENOSPC, errno.EDQUOT}
_ABOUT_THE_PATH = {errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENOTDIR, errno.EISDIR,
                   errno.ENAMETOOLONG, errno.ELOOP}


def _existing_ancestor(directory: Path) -> Path:
    directory = Path(os.path.abspath(directory))
    while not directory.is_dir() and directory != directory.parent:
        directory = directory.parent
    return directory


def free_bytes(directory: str | os.PathLike) -> int:
    """Bytes available to this user on the file system that holds (or would hold) `directory`."""
    try:
        return shutil.disk_usage(_existing_ancestor(Path(directory))).free
    except OSError:
        return 0


def _free_space(directory: Path) -> str:
    try:
        inodes_left = os.statvfs(_existing_ancestor(directory)).f_favail
    except OSError:
        inodes_left = None
    bytes_left = f"{free_bytes(directory)} bytes free"
    return f"no free inodes, {bytes_left}" if inodes_left == 0 else bytes_left


def disk_is_full(directory: str | os.PathLike, probe_bytes: int = PROBE_BYTES) -> bool:
    """Whether a small file can no longer be written in `directory`.

    Call it right after a library's write failed and before removing what that write left behind:
    the partial file is what fills the disk, and the library's own error often says nothing about
    space ("Protobuf serialization failed").
    """
    directory = _existing_ancestor(Path(directory))
    try:
        handle, name = tempfile.mkstemp(prefix=".edge-ai-space-probe-", dir=directory)
    except OSError as error:
        return error.errno in _SPACE
    try:
        block = b"\0" * probe_bytes
        written = 0
        while written < probe_bytes:
            count = os.write(handle, block[written:])
            if count <= 0:
                return True
            written += count
        os.fsync(handle)
        return False
    except OSError as error:
        return error.errno in _SPACE
    finally:
        os.close(handle)
        with contextlib.suppress(OSError):
            os.unlink(name)


def _sentence(code: int | None, path: Path, error: BaseException | None, elsewhere: str) -> StorageError:
    directory = path.parent
    if code == errno.ENOSPC:
        text = f"no space left on the device holding {directory} ({_free_space(directory)}): free space or {elsewhere}"
    elif code == errno.EDQUOT:
        text = (f"no space left in your disk quota on the device holding {directory} "
                f"({free_bytes(directory)} bytes free on the device): free space or {elsewhere}")
    elif code == errno.EROFS:
        text = f"the file system holding {directory} is read-only: remount it read-write or {elsewhere}"
    elif code in (errno.EACCES, errno.EPERM):
        text = f"permission denied in {directory}: give this user write access there or {elsewhere}"
    elif code == errno.EFBIG:
        text = f"the file is larger than the file system holding {directory} allows: {elsewhere}"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        text = f"a part of {directory} is a file, not a directory: move that file away or {elsewhere}"
    elif code == errno.EISDIR:
        text = f"{path} is a directory: remove it or {elsewhere}"
    elif code == errno.ENAMETOOLONG:
        text = f"the file name is too long for the file system: choose a shorter name or {elsewhere}"
    elif code == errno.ELOOP:
        text = f"{path} is a symbolic link, which is not followed: remove the link or {elsewhere}"
    else:
        detail = getattr(error, "strerror", None) or f"{type(error).__name__}: {str(error)[:200]}"
        text = f"{detail}: check {directory} or {elsewhere}"
    return StorageError(f"cannot write {path}: {text}")


def _concerns(error: OSError, paths: Sequence[Path], temporaries: Sequence[Path]) -> bool:
    """Whether an OSError raised by a writer is about the files being written (not, say, its input)."""
    if error.filename is None:
        return True
    named = os.path.abspath(error.filename)
    for candidate in (*paths, *temporaries):
        candidate = os.path.abspath(candidate)
        if named == candidate or candidate.startswith(named.rstrip(os.sep) + os.sep):
            return True
    return False


def _diagnose(error: BaseException, paths: Sequence[Path], temporaries: Sequence[Path], certain: bool,
              current: Path | None = None) -> tuple[int | None, Path] | None:
    """The errno-like cause and the file concerned when `error` is a storage failure, else None.

    `certain` says the error came from our own create/rename of `current`, so any OSError counts.
    """
    if not isinstance(error, Exception) or isinstance(error, EdgeAIError):
        return None
    path = current or paths[0]
    if isinstance(error, OSError):
        if error.filename is not None:
            named = os.path.abspath(error.filename)
            for candidate, temporary in zip(paths, temporaries):
                if named in (os.path.abspath(candidate), os.path.abspath(temporary)):
                    path = candidate
        if error.errno in _SPACE or certain:
            return error.errno, path
        if error.errno in _ABOUT_THE_PATH and _concerns(error, paths, temporaries):
            return error.errno, path
    for directory in dict.fromkeys(p.parent for p in paths):
        if disk_is_full(directory):
            return errno.ENOSPC, next(p for p in paths if p.parent == directory)
    return None


def write_failure(path: str | os.PathLike, error: BaseException, elsewhere: str = ELSEWHERE,
                  certain: bool = True) -> StorageError | None:
    """The StorageError sentence for a failed write of `path`, or None when it was not about storage.

    For writes that do not go through `atomic_output`, or whose errors a caller catches itself. Any
    error counts when the disk holding `path` is full, so call this before removing what the failed
    write left. With `certain` (the error came from writing `path` itself) every OSError counts;
    without it (the step also read other files) only OSErrors about `path` or its directories do.
    """
    path = Path(path)
    diagnosis = _diagnose(error, [path], [path], certain=certain and isinstance(error, OSError))
    return None if diagnosis is None else _sentence(diagnosis[0], path, error, elsewhere)


def _file_mode(path: Path) -> int:
    """The mode a plain `open(path, "w")` would give: the old file's, else 0o666 less the umask."""
    try:
        existing = os.lstat(path)
        if stat.S_ISREG(existing.st_mode):
            return stat.S_IMODE(existing.st_mode)
    except OSError:
        pass
    return 0o666 & ~_umask()


def _umask() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def _create_temporary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if len(path.suffix) <= 16 else ""
    handle, name = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(handle, _file_mode(path))
    finally:
        os.close(handle)
    return Path(name)


def _discard(temporary: Path) -> None:
    """Remove a temporary and give its space back now, even while a failed writer still holds it open."""
    with contextlib.suppress(OSError):
        os.close(os.open(temporary, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW))
    with contextlib.suppress(OSError):
        os.unlink(temporary)


def _commit(temporary: Path, path: Path) -> None:
    handle = os.open(temporary, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
    os.replace(temporary, path)


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | os.PathLike], elsewhere: str = ELSEWHERE) -> Iterator[list[Path]]:
    """Write several files as one step: all of them, in the given order, or none.

    Yields one temporary path per file, each in its file's directory and with its suffix (so writers
    that pick a format by suffix still work). When the block ends normally they are renamed onto their
    names in order, so the last one (e.g. a result JSON) appears only after all the others. On any
    failure every temporary is removed, and files this call already renamed into place are removed
    too. Storage failures become one StorageError sentence; other errors pass unchanged.

    Parameters
    ----------
    paths : sequence of path
        The files to write; parent directories are created.
    elsewhere : str
        The second fix offered in error messages ("free space or <elsewhere>"), e.g.
        "pass another --compiled-model-path".
    """
    paths = [Path(p) for p in paths]
    temporaries: list[Path] = []
    committed: list[Path] = []
    certain, current = True, None
    try:
        for current in paths:
            temporaries.append(_create_temporary(current))
        certain, current = False, None
        yield list(temporaries)
        certain = True
        for temporary, current in zip(temporaries, paths):
            _commit(temporary, current)
            committed.append(current)
    except BaseException as error:
        diagnosis = _diagnose(error, paths, temporaries, certain, current)
        for leftover in temporaries:
            _discard(leftover)
        for leftover in committed:
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        if diagnosis is not None:
            raise _sentence(diagnosis[0], diagnosis[1], error, elsewhere) from error
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, elsewhere: str = ELSEWHERE) -> Iterator[Path]:
    """Yield a temporary path to write `path` through; it replaces `path` only if the block succeeds.

    The temporary sits in `path`'s directory (created if missing) and keeps `path`'s suffix. After the
    block it is flushed to disk and renamed onto `path`; on any exception (KeyboardInterrupt and
    SystemExit included) it is removed and the previous `path`, if any, is left as it was. Storage
    failures (no space, read-only, no permission, or a library error while the disk is full) are
    raised as one StorageError sentence naming the file and the fix.
    """
    with atomic_outputs([path], elsewhere) as (temporary,):
        yield temporary


def atomic_write_bytes(path: str | os.PathLike, data: bytes | bytearray | memoryview,
                       elsewhere: str = ELSEWHERE) -> Path:
    """Write `data` to `path` through `atomic_output`; returns `path`."""
    with atomic_output(path, elsewhere) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8",
                      elsewhere: str = ELSEWHERE) -> Path:
    """Write `text` to `path` through `atomic_output`; returns `path`."""
    with atomic_output(path, elsewhere) as temporary:
        with open(temporary, "w", encoding=encoding) as handle:
            handle.write(text)
    return Path(path)
