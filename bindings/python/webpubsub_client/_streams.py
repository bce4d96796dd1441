"""Group streams for the synchronous client: the writer and the per-stream reader.

A :class:`GroupStreamWriter` owns one native ``wps_stream*``. A :class:`GroupStreamReader`
receives the fragments of one incoming stream ``(group, stream_id)`` from the client's event
thread and hands them to the thread that iterates it.

Bounded buffering: a reader holds at most ``stream_reader_max_fragments`` fragments (default
10,000, the library's default event-queue bound). When it is full, the client's event thread
waits for the reader to make room, up to ``stream_reader_wait`` seconds: meanwhile no other
event of that client is delivered, the library's event queue fills up to its own bound and the
client stops reading its socket (back-pressure up to the publisher). If no room appears in
time, the reader ends with ``GroupStreamError("ReaderOverflow")`` after the fragments it holds,
and the rest of that stream is discarded.
"""

import collections
import ctypes
import threading
import weakref
from typing import Any, Deque, Optional, Union

from . import _native as n
from . import _payload
from ._options import seconds_to_ms
from .models._enums import WebPubSubDataType
from .models._errors import GroupStreamError
from .models._models import StreamFragment

_OVERFLOW_MESSAGE = "the reader did not make room for the stream's next fragment in time"


def stream_failure(what: str, code: int) -> Exception:
    """The exception for a failed ``wps_stream_*`` call (read right after it on this thread):
    :class:`GroupStreamError` when the stream is over, else a ``SendMessageError``."""
    from ._core import send_error

    message, name = n.last_error()
    if code == n.WPS_ERR_STREAM_CLOSED:
        return GroupStreamError(name or "Closed", message or None, code=code)
    return send_error(what, code, 0, message, name)


def timeout_ms(timeout: Optional[float]) -> int:
    """``None`` = the client's ack timeout (0 for the library)."""
    if timeout is None:
        return 0
    if timeout <= 0:
        raise ValueError("timeout must be > 0 seconds")
    return max(1, seconds_to_ms(timeout))


def open_native_stream(
    core: Any, group: str, stream_id: Optional[str], no_echo: bool, idle_timeout_ms: Optional[int], timeout: Any
) -> Any:
    """Open a stream (blocking); returns the native handle or raises."""
    lib = core.lib
    if lib.wps_stream_open is None:
        raise RuntimeError("the native library has no group streams (wps_stream_open is missing)")
    raw_group = n.encode_identifier(group, "group")
    raw_id = None if stream_id is None else n.encode_identifier(stream_id, "stream_id")
    idle = 0 if idle_timeout_ms is None else int(idle_timeout_ms)
    if idle < 0 or idle > 0xFFFFFFFF:
        raise ValueError("idle_timeout_ms must be between 0 and 2**32 - 1")
    handle = n.StreamP()
    code = lib.wps_stream_open(
        core.handle,
        raw_group,
        raw_id,
        n.WPS_SEND_NO_ECHO if no_echo else 0,
        idle,
        timeout,
        ctypes.byref(handle),
    )
    if code != n.WPS_OK:
        raise stream_failure(f"open stream on group {group!r}", code)
    return handle


def _free(lib: Any, handle: Any) -> None:
    lib.wps_stream_free(handle)


class _WriterBase:
    """What the sync and asyncio writers share: the handle, its id, and release."""

    def __init__(self, core: Any, handle: Any, group: str) -> None:
        self._lib = core.lib
        self._handle = handle
        self.group = group
        raw = self._lib.wps_stream_get_id(handle)
        self.stream_id: str = n.decode(raw) or ""
        self._finalizer = weakref.finalize(self, _free, self._lib, handle)

    def _encode(self, data: Any, data_type: Union[WebPubSubDataType, str]) -> Any:
        return _payload.encode(data, data_type)

    @property
    def closed(self) -> bool:
        """Whether the handle was released (``close``, or leaving the ``with`` block)."""
        return not self._finalizer.alive

    def close(self) -> None:
        """Release the handle. A stream that was neither ended nor aborted is aborted
        (subscribers get ``UserError``). Idempotent."""
        self._finalizer()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(group={self.group!r}, stream_id={self.stream_id!r})"


class GroupStreamWriter(_WriterBase):
    """A group stream being published (``WebPubSubClient.open_group_stream``).

    ``write`` sends fragments in call order and blocks only while the stream's
    unacknowledged bytes exceed the client's ``stream_buffer_max_bytes`` (back-pressure).
    ``end`` and ``abort`` return once the service confirmed the stream closed.

    As a context manager: leaving the block normally ends the stream; leaving it with an
    exception aborts it (``UserError`` with the exception's text as message and its class
    name as ``user_error_code``); the handle is released either way.

    Failures raise :class:`GroupStreamError` once the stream is over (``name`` says why:
    ``Ended``, ``IdleTimeout``, ``ConnectionLost``, ...) and ``SendMessageError`` otherwise
    (timeout, refusal by the service).
    """

    def write(self, data: Any, data_type: Union[WebPubSubDataType, str], *, timeout: Optional[float] = None) -> None:
        """Send one fragment (``text``: ``str``, ``json``: a JSON value, ``binary``: bytes-like).

        :keyword timeout: Seconds to wait for buffer room (default: the client's ack timeout);
            when it passes, ``SendMessageError`` (``WPS_ERR_TIMEOUT``) and nothing was sent.
        """
        raw, native_type = self._encode(data, data_type)
        code = self._lib.wps_stream_write(self._handle, raw, len(raw), native_type, timeout_ms(timeout))
        if code != n.WPS_OK:
            raise stream_failure(f"write to stream {self.stream_id!r}", code)

    def end(self, *, timeout: Optional[float] = None) -> None:
        """End the stream; returns once the service confirmed it."""
        code = self._lib.wps_stream_end(self._handle, timeout_ms(timeout))
        if code != n.WPS_OK:
            raise stream_failure(f"end stream {self.stream_id!r}", code)

    def abort(
        self, message: Optional[str] = None, user_error_code: Optional[str] = None, *, timeout: Optional[float] = None
    ) -> None:
        """End the stream with an error: subscribers get ``UserError`` with ``message`` and
        ``user_error_code``. Returns once the service confirmed it."""
        raw_msg = None if message is None else n.encode_identifier(message, "message")
        raw_code = None if user_error_code is None else n.encode_identifier(user_error_code, "user_error_code")
        code = self._lib.wps_stream_abort(self._handle, raw_msg, raw_code, timeout_ms(timeout))
        if code != n.WPS_OK:
            raise stream_failure(f"abort stream {self.stream_id!r}", code)

    def __enter__(self) -> "GroupStreamWriter":
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        try:
            if exc_type is None:
                self.end()
            else:
                try:
                    self.abort(str(exc_val) or exc_type.__name__, exc_type.__name__)
                except Exception:  # noqa: BLE001 - the original exception is the one to see
                    pass
        finally:
            self.close()


# --- readers ------------------------------------------------------------------------------


class ReaderBase:
    """The state every reader keeps: identity, buffered fragments, and how the stream ended."""

    def __init__(self, group: str, stream_id: str, from_user_id: Optional[str], max_fragments: int) -> None:
        self.group = group
        self.stream_id = stream_id
        self.from_user_id = from_user_id
        self._max = max(1, int(max_fragments))
        self._items: Deque[StreamFragment] = collections.deque()
        self._ended = False
        self._error: Optional[GroupStreamError] = None
        self._closed = False

    @property
    def done(self) -> bool:
        """Whether the stream's last frame arrived (fragments may still be buffered)."""
        return self._ended

    @property
    def error(self) -> Optional[GroupStreamError]:
        """The stream's error once it failed, else ``None``."""
        return self._error

    def __repr__(self) -> str:
        return f"{type(self).__name__}(group={self.group!r}, stream_id={self.stream_id!r})"


def _overflow_error() -> GroupStreamError:
    return GroupStreamError("ReaderOverflow", _OVERFLOW_MESSAGE)


class GroupStreamReader(ReaderBase):
    """The fragments of one received group stream, in order.

    Iterate it (``for fragment in reader``) on a thread of your own: iteration yields
    :class:`StreamFragment` objects, stops at a clean end, and raises
    :class:`GroupStreamError` (``name``, ``message``, ``user_error_code``) when the stream
    failed. :meth:`read` does the same one fragment at a time with an optional timeout.
    Reading inside a listener, on the thread that delivers the fragments, would wait for
    itself, so it raises ``RuntimeError`` instead when nothing is buffered.

    See the module documentation for the buffering bound.
    """

    def __init__(
        self,
        group: str,
        stream_id: str,
        from_user_id: Optional[str],
        max_fragments: int,
        wait_s: float,
        on_delivery_thread: Any,
    ) -> None:
        super().__init__(group, stream_id, from_user_id, max_fragments)
        self._cv = threading.Condition()
        self._wait_s = wait_s
        self._on_delivery_thread = on_delivery_thread

    # -- the event thread's side

    def push(self, fragment: StreamFragment) -> None:
        with self._cv:
            if self._ended or self._closed:
                return
            if len(self._items) >= self._max:
                room = self._cv.wait_for(
                    lambda: self._closed or self._ended or len(self._items) < self._max, self._wait_s
                )
                if self._closed or self._ended:
                    return
                if not room:
                    self._ended = True
                    self._error = _overflow_error()
                    self._cv.notify_all()
                    return
            self._items.append(fragment)
            self._cv.notify_all()

    def finish(self, error: Optional[GroupStreamError]) -> None:
        with self._cv:
            if self._ended:
                return
            self._ended = True
            self._error = error
            self._cv.notify_all()

    # -- the reader's side

    def read(self, timeout: Optional[float] = None) -> Optional[StreamFragment]:
        """The next fragment; ``None`` after a clean end.

        :raises GroupStreamError: the stream failed (after its buffered fragments).
        :raises TimeoutError: nothing arrived within ``timeout`` seconds.
        """
        with self._cv:
            if not self._items and not self._ended and not self._closed and self._on_delivery_thread():
                raise RuntimeError(
                    "reading a group stream inside a listener would block the thread that delivers its "
                    "fragments; hand the reader to a thread of your own"
                )
            if not self._cv.wait_for(lambda: self._items or self._ended or self._closed, timeout):
                raise TimeoutError(f"no fragment of stream {self.stream_id!r} within {timeout} s")
            if self._items:
                fragment = self._items.popleft()
                self._cv.notify_all()
                return fragment
            if self._error is not None and not self._closed:
                raise self._error
            return None

    def __iter__(self) -> "GroupStreamReader":
        return self

    def __next__(self) -> StreamFragment:
        fragment = self.read()
        if fragment is None:
            raise StopIteration
        return fragment

    def close(self) -> None:
        """Stop reading: buffered fragments are dropped and later ones discarded."""
        with self._cv:
            self._closed = True
            self._items.clear()
            self._cv.notify_all()


__all__ = ["GroupStreamWriter", "GroupStreamReader", "GroupStreamError", "StreamFragment"]
