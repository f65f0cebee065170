"""One root exception for the library, with specific subclasses.

Every message says what went wrong and how to fix it, so that a scenario can print it as is.
"""


class EdgeAIError(Exception):
    """Root of every error raised on purpose by edge_ai_lib."""


class ClassPathError(EdgeAIError):
    """A dotted class path does not name a usable class."""


class ConfigurationError(EdgeAIError):
    """Arguments or settings are inconsistent or out of range."""


class DatasetError(EdgeAIError):
    """A dataset is missing, incomplete or malformed."""


class DatasetNotFoundError(DatasetError):
    """The dataset root does not exist or lacks the prepared files."""


class DownloadError(DatasetError):
    """A download failed (network, HTTP status, truncated transfer)."""


class ChecksumMismatchError(DownloadError):
    """A downloaded file does not match its published checksum."""


class ModelLoadError(EdgeAIError):
    """A model file is missing, corrupt or of the wrong kind."""


class ConversionError(EdgeAIError):
    """A model conversion (export, import, compilation) failed or changed the model's numerics."""


class UnsupportedModelError(ConversionError):
    """A compiler cannot take this model (an operator it lacks): its runs are failed rows of the report,
    the other runs go on."""


class NotSupportedError(EdgeAIError):
    """The requested feature is not supported by this implementation."""


class MeasurementsError(EdgeAIError):
    """A result breaks its schema, or there is nothing to compute its statistics from."""


class ProtocolError(EdgeAIError):
    """A frame or a session broke the protocol (see docs/protocol.md)."""


class ConnectionLostError(ProtocolError):
    """The peer closed the connection or stopped answering."""


class AnswerDeadlineError(ConnectionLostError):
    """The board did not answer within the transport's deadline (a hung or far too slow board), as
    opposed to a connection that broke."""


class RemoteError(ProtocolError):
    """The server answered ERROR; the message is its reason."""


class RuntimeFailure(EdgeAIError):
    """A runtime could not load a model or run it."""


class BoardError(EdgeAIError):
    """A board could not be reached, could not start the server, or died."""


class StorageError(EdgeAIError):
    """A file could not be written: no space left, a read-only file system, no permission."""
