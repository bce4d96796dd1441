"""Exceptions of the public API.

The classes have the names and attributes of the official SDK's exceptions. When
``azure-core`` is installed they also derive from ``azure.core.exceptions.AzureError``, so
``except AzureError`` keeps working after switching packages.
"""

from typing import Optional

try:  # pragma: no cover - depends on the environment
    from azure.core.exceptions import AzureError as _ErrorBase
except ImportError:  # pragma: no cover

    class _ErrorBase(Exception):  # type: ignore[no-redef]
        """Stand-in base class used when ``azure-core`` is not installed."""

        def __init__(self, message: object = None, *args: object, **kwargs: object) -> None:
            self.message = str(message) if message is not None else ""
            super().__init__(self.message, *args)


class AckMessageError:
    """Error details carried by a failed operation.

    :ivar name: The service's error name (``Forbidden``, ``InternalServerError``, ...) or, for a
        failure that happened before the service answered, the library's result name
        (``WPS_ERR_TIMEOUT``, ``WPS_ERR_NOT_CONNECTED``, ...).
    :ivar message: Human-readable detail.
    """

    def __init__(self, *, name: str, message: str) -> None:
        self.name = name
        self.message = message

    def __repr__(self) -> str:
        return f"AckMessageError(name={self.name!r}, message={self.message!r})"


class SendMessageError(_ErrorBase):
    """An operation (join, leave, send to group, send event) failed.

    :ivar message: What failed.
    :ivar ack_id: The ack id the operation used; pass it again as ``ack_id=`` to retry and let
        the service deduplicate.
    :ivar error_detail: Error name and message (see :class:`AckMessageError`).
    :ivar code: The native library's result code (``0`` when not applicable).
    """

    def __init__(
        self,
        message: str,
        ack_id: Optional[int] = None,
        error_detail: Optional[AckMessageError] = None,
        code: int = 0,
    ) -> None:
        super().__init__(message)
        self.name = "SendMessageError"
        self.ack_id = ack_id
        self.error_detail = error_detail
        self.code = code


class OpenClientError(_ErrorBase):
    """The client could not be opened (bad state, connection failure or start timeout)."""

    def __init__(self, message: object = None, *args: object, code: int = 0, **kwargs: object) -> None:
        super().__init__(message, *args, **kwargs)
        self.code = code


class ReconnectError(_ErrorBase):
    """The client failed to reconnect."""


class RecoverError(_ErrorBase):
    """The client failed to recover its connection."""


class GroupStreamError(_ErrorBase):
    """A group stream failed (beyond the official Python SDK).

    Raised by a stream reader when the stream's last frame carries an error, and by a stream
    writer when the stream is already over (``WPS_ERR_STREAM_CLOSED``).

    :ivar name: The error name: the service's (``UserError`` when the publisher aborted,
        ``IdleTimeout``, ``Cancelled``, ...), the receiving client's own (``SequenceGap``,
        ``Duplicate``, ``IdleTimeout``, ``SessionLost``, ``Stopped``, ``TooManyStreams``,
        ``ReaderOverflow``), or, for a writer, why the stream is over (``Ended``,
        ``IdleTimeout``, ``ProtocolViolation``, ``ConnectionLost``, ``Stopped``, ``Freed``).
    :ivar message: Human-readable detail, if any.
    :ivar user_error_code: The publisher's own error code of a ``UserError``, if any.
    :ivar code: The native result code (``0`` for a reader's error).
    """

    def __init__(
        self,
        name: str,
        message: Optional[str] = None,
        user_error_code: Optional[str] = None,
        code: int = 0,
    ) -> None:
        text = name + (f": {message}" if message else "") + (f" (code {user_error_code})" if user_error_code else "")
        super().__init__(text)
        self.name = name
        self.message = message  # type: ignore[assignment]
        self.user_error_code = user_error_code
        self.code = code

    def __repr__(self) -> str:
        return (
            f"GroupStreamError(name={self.name!r}, message={self.message!r}, "
            f"user_error_code={self.user_error_code!r})"
        )


class WebPubSubClientError(_ErrorBase):
    """Any other failure reported by the native library.

    :ivar code: The native result code (``wps_result``).
    :ivar code_name: Its name, e.g. ``WPS_ERR_INVALID_ARG``.
    """

    def __init__(self, message: str, code: int = 0, code_name: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.code_name = code_name
