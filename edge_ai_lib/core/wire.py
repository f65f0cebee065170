"""The wire format of docs/protocol.md as pure functions: frame headers, CRCs, tensor lists; no I/O.

Every transport and every peer (the server, the client, the tests, a board written in another
language) reads and writes the same bytes, so the format lives here once, apart from how the bytes
travel.
"""

from __future__ import annotations

import enum
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edge_ai_lib.core.errors import ProtocolError

MAGIC = b"EAIT"
PROTOCOL_VERSION = 1
HEADER = struct.Struct(">4sBBHQI")  # magic, version, type, flags, payload length, payload CRC
HEADER_SIZE = HEADER.size + 4  # + CRC-32 of the header
# Flag bit 0: the payload's CRC-32 follows the payload (4 bytes, big-endian) and the header's payload
# CRC field is 0, so a sender streams a large payload without a pass over it first. Sent only to a
# board whose answer to STATS lists "crc_trailer" in `frame_flags` (docs/protocol.md).
FLAG_CRC_TRAILER = 0x0001
# Flag bit 1: the payload's checksum is CRC-32C (Castagnoli), computed by the CPU's CRC instruction
# (~3x zlib's CRC-32 here), instead of CRC-32; sent only to a board that lists "crc32c" in
# `frame_flags`, which it does when the optional `crc32c` package is installed (extra `fastcrc`).
FLAG_CRC32C = 0x0002
TRAILER = struct.Struct(">I")

try:  # optional: without it, frames use CRC-32 and the board does not offer "crc32c"
    from crc32c import crc32c as _crc32c
except ImportError:  # pragma: no cover - depends on the install
    _crc32c = None

CRC32C_AVAILABLE = _crc32c is not None


def payload_checksum(use_crc32c: bool):
    """The running checksum function (data, value) -> value of a frame's payload."""
    if not use_crc32c:
        return zlib.crc32
    if _crc32c is None:
        raise FrameError("the frame's payload checksum is CRC-32C, which this side cannot compute: install the "
                         "crc32c package (edge_ai_lib[fastcrc]) or do not send flag crc32c", False)
    return _crc32c
DEFAULT_MAX_PAYLOAD = 256 * 1024 * 1024


class MessageType(enum.IntEnum):
    """Message types of the benchmark session; the numbers are the wire values."""

    OK = 0
    ERROR = 1
    DATA = 2
    MODEL = 3
    PROCESS = 4
    OUTPUT = 5
    STATS = 6
    INFER = 7  # the fast path: inputs in, board time and outputs back (sent only to boards that list it)


INFER_TIME = struct.Struct(">d")


def encode_infer_answer(board_seconds: float, outputs: bytes | bytearray) -> bytes:
    """OK's payload answering INFER: the runtime call's time (f64, big-endian, seconds), then the outputs."""
    return INFER_TIME.pack(board_seconds) + bytes(outputs)


def decode_infer_answer(payload: bytes | bytearray | memoryview) -> tuple[float, memoryview]:
    """(board seconds, the outputs' tensor list) of INFER's OK; a payload too short to hold them is refused."""
    view = memoryview(payload)
    if len(view) < INFER_TIME.size + 4:
        raise ProtocolError(f"the board's answer to INFER has {len(view)} bytes: it must start with the 8-byte time "
                            "and a tensor list (docs/protocol.md)")
    (seconds,) = INFER_TIME.unpack_from(view, 0)
    if not math.isfinite(seconds) or seconds < 0:
        raise ProtocolError(f"the board's answer to INFER reports an inference time of {seconds!r} s: "
                            "its runtime does not follow docs/protocol.md")
    return seconds, view[INFER_TIME.size:]


@dataclass(frozen=True)
class FrameHeader:
    """A checked header: what the receiver needs to read and check the payload that follows."""

    message_type: int
    length: int
    payload_crc: int
    crc_trailer: bool = False  # the CRC comes after the payload (FLAG_CRC_TRAILER), not in the header
    crc32c: bool = False  # the payload's checksum is CRC-32C (FLAG_CRC32C), not CRC-32


class FrameError(ProtocolError):
    """A malformed frame; `resynchronisable` tells whether the stream is still in step after it.

    A receiver answers a resynchronisable error and goes on with the same peer; any other means the
    next byte cannot be trusted to start a frame, so the connection must be closed.
    """

    def __init__(self, message: str, resynchronisable: bool):
        super().__init__(message)
        self.resynchronisable = resynchronisable


def encode_header(message_type: int, payload: bytes | bytearray | memoryview, crc_trailer: bool = False,
                  crc32c: bool = False) -> bytes:
    """The 24-byte header of a frame carrying `payload` (sent before it, possibly in pieces).

    With `crc_trailer`, the payload is not read here: its checksum goes after it (FLAG_CRC_TRAILER),
    CRC-32C with `crc32c` (FLAG_CRC32C), else CRC-32.
    """
    if crc_trailer:
        flags = FLAG_CRC_TRAILER | (FLAG_CRC32C if crc32c else 0)
        head = HEADER.pack(MAGIC, PROTOCOL_VERSION, int(message_type), flags, len(payload), 0)
    else:
        head = HEADER.pack(MAGIC, PROTOCOL_VERSION, int(message_type), 0, len(payload),
                           zlib.crc32(payload) if len(payload) else 0)
    return head + struct.pack(">I", zlib.crc32(head))


def decode_header(data: bytes, max_payload: int) -> FrameHeader:
    """Check a 24-byte header; raise FrameError saying what is wrong and whether to resynchronise.

    The length is checked against `max_payload` here, from the header alone, so that a receiver can
    refuse a huge frame before reading (or allocating for) any of it.
    """
    magic, version, message_type, flags, length, payload_crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FrameError(f"bad magic {magic!r}, expected {MAGIC!r}: not an edge_ai_lib client", False)
    if version != PROTOCOL_VERSION:
        raise FrameError(f"protocol version {version} is not supported (this server speaks "
                         f"{PROTOCOL_VERSION}): use the same edge_ai_lib version on both sides", False)
    (header_crc,) = struct.unpack_from(">I", data, HEADER.size)
    if zlib.crc32(data[:HEADER.size]) != header_crc:
        raise FrameError("header CRC mismatch: the frame header is corrupt", False)
    if length > max_payload:
        raise FrameError(f"payload of {length} bytes exceeds the limit of {max_payload} bytes: "
                         "raise --max-payload on the server", False)
    if flags & FLAG_CRC32C:
        payload_checksum(True)  # refuse, from the header, a checksum this side cannot compute
    return FrameHeader(message_type, length, payload_crc, bool(flags & FLAG_CRC_TRAILER), bool(flags & FLAG_CRC32C))


def check_payload(header: FrameHeader, payload: bytes | bytearray, crc: int | None = None) -> MessageType:
    """Check a payload's CRC and the frame's type; errors here leave the stream in step.

    Parameters
    ----------
    crc : int | None
        The payload's CRC-32 when the receiver computed it as the bytes arrived (saving a second pass
        over a large payload); None computes it here.
    """
    if crc is None:
        crc = payload_checksum(header.crc32c)(payload, 0) if len(payload) else 0
    if crc != header.payload_crc:
        raise FrameError("payload CRC mismatch: the payload was corrupted in transit", True)
    try:
        return MessageType(header.message_type)
    except ValueError:
        raise FrameError(f"unknown message type {header.message_type}", True) from None


DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int8): 2, np.dtype(np.uint8): 3,
               np.dtype(np.int32): 4, np.dtype(np.int64): 5}
CODE_DTYPES = {code: dtype.newbyteorder("<") for dtype, code in DTYPE_CODES.items()}
MAX_RANK = 8
# Each decoded tensor costs an ndarray (~100 bytes) whatever its size: a limit on their number keeps a
# frame of many tiny tensors from costing far more memory than its own bytes.
MAX_TENSORS = 256
MAX_DIMENSION = 1 << 31  # even an empty tensor (another dimension 0) must have a shape numpy can hold
TENSOR_ENTRY = struct.Struct(">BB")


def encode_tensors(tensors: Sequence[np.ndarray]) -> bytes:
    """Tensor list of docs/protocol.md: count, then (dtype, rank, dims, C-order little-endian data) each.

    Refuses what the receiver would refuse (too many tensors, a rank over the limit, a dtype with no
    code), so the sender learns of it before anything is sent.
    """
    if len(tensors) > MAX_TENSORS:
        raise ProtocolError(f"{len(tensors)} tensors cannot travel in one tensor list (at most {MAX_TENSORS})")
    parts = [struct.pack(">I", len(tensors))]
    for tensor in tensors:
        array = np.asarray(tensor)
        if array.dtype not in DTYPE_CODES:
            raise ProtocolError(f"dtype {array.dtype} cannot travel in a tensor list: use one of "
                                f"{', '.join(str(d) for d in DTYPE_CODES)}")
        if array.ndim > MAX_RANK:
            raise ProtocolError(f"a tensor of rank {array.ndim} cannot travel in a tensor list (at most {MAX_RANK})")
        parts.append(TENSOR_ENTRY.pack(DTYPE_CODES[array.dtype], array.ndim))
        parts.append(struct.pack(f">{array.ndim}Q", *array.shape))
        parts.append(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    return b"".join(parts)


def _tensor_layout(view: memoryview) -> list[tuple[np.dtype, tuple[int, ...], int]]:
    """(dtype, shape, offset) of every tensor, every length checked against the payload; allocates no tensor."""
    size = len(view)
    if size < 4:
        raise ProtocolError(f"truncated tensor list: {size} bytes, the count alone takes 4")
    (count,) = struct.unpack_from(">I", view, 0)
    if count > MAX_TENSORS:
        raise ProtocolError(f"tensor list of {count} tensors: at most {MAX_TENSORS} are accepted")
    layout, offset = [], 4
    for index in range(count):
        if offset + TENSOR_ENTRY.size > size:
            raise ProtocolError(f"truncated tensor list: tensor {index} of {count} has no header")
        code, rank = TENSOR_ENTRY.unpack_from(view, offset)
        offset += TENSOR_ENTRY.size
        if code not in CODE_DTYPES:
            raise ProtocolError(f"tensor {index}: unknown dtype code {code} (known: 0-{len(CODE_DTYPES) - 1})")
        if rank > MAX_RANK:
            raise ProtocolError(f"tensor {index}: rank {rank} is over the limit of {MAX_RANK}")
        if offset + 8 * rank > size:
            raise ProtocolError(f"truncated tensor list: the dimensions of tensor {index} are cut off")
        shape = struct.unpack_from(f">{rank}Q", view, offset)
        offset += 8 * rank
        if any(dimension > MAX_DIMENSION for dimension in shape):
            raise ProtocolError(f"tensor {index} of shape {tuple(shape)}: a dimension is over {MAX_DIMENSION}")
        dtype = CODE_DTYPES[code]
        nbytes = dtype.itemsize * math.prod(shape)  # Python integers: no overflow
        if offset + nbytes > size:
            raise ProtocolError(f"tensor {index} of shape {tuple(shape)} needs {nbytes} bytes, "
                                f"only {size - offset} left in the payload")
        layout.append((dtype, shape, offset))
        offset += nbytes
    if offset != size:
        raise ProtocolError(f"{size - offset} stray bytes after the tensor list")
    return layout


def decode_tensors(payload: bytes | bytearray | memoryview) -> list[np.ndarray]:
    """Inverse of encode_tensors; the arrays are views of `payload`, made only once all of it checks out.

    Views, not copies, so that decoding costs no more memory than the frame already holds; a list that
    breaks a limit raises ProtocolError naming the tensor and the limit before any array exists.
    """
    view = memoryview(payload).cast("B")
    return [np.ndarray(shape, dtype=dtype, buffer=view, offset=offset) for dtype, shape, offset in _tensor_layout(view)]
