"""Group streams for the asyncio client: the writer and the per-stream async reader.

The library's stream calls block (``open``, ``end`` and ``abort`` wait for the service,
``write`` waits while the stream's buffer is full), so the writer runs them on the loop's
default executor; a ``write`` that finds room (the common case) runs on the loop thread
without a thread hop.

Bounded buffering: a reader holds at most ``stream_reader_max_fragments`` fragments (default
10,000, the library's default event-queue bound). When one is full the client stops
dispatching events (the library's event queue then fills to its own bound and the client
stops reading its socket: back-pressure up to the publisher) until the reader's consumer
takes a fragment. A dispatch batch in progress completes first, so a reader may hold up to 64
fragments beyond the bound. If no room appears within ``stream_reader_wait`` seconds, the
reader ends with ``GroupStreamError("ReaderOverflow")`` after the fragments it holds, the rest
of that stream is discarded, and dispatching resumes.
"""

import asyncio
from typing import Any, Callable, Optional, Union

from .. import _native as n
from .._streams import ReaderBase, _overflow_error, _WriterBase, open_native_stream, stream_failure, timeout_ms
from ..models._enums import WebPubSubDataType
from ..models._errors import GroupStreamError
from ..models._models import StreamFragment


async def _in_executor(fn: Callable[[], Optional[Exception]]) -> None:
    """Run a blocking native call on the default executor; ``fn`` returns the exception to
    raise (built on the calling thread, where the library's last error is)."""
    error = await asyncio.get_running_loop().run_in_executor(None, fn)
    if error is not None:
        raise error


async def open_stream(
    core: Any, group: str, stream_id: Optional[str], no_echo: bool, idle_timeout_ms: Optional[int], timeout: int
) -> Any:
    def call() -> Any:
        try:
            return open_native_stream(core, group, stream_id, no_echo, idle_timeout_ms, timeout)
        except Exception as e:  # noqa: BLE001 - re-raised on the loop
            return e

    result = await asyncio.get_running_loop().run_in_executor(None, call)
    if isinstance(result, BaseException):
        raise result
    return result


class AsyncGroupStreamWriter(_WriterBase):
    """A group stream being published (``await client.open_group_stream(...)``); the asyncio
    twin of :class:`webpubsub_client.GroupStreamWriter`.

    Writes are sent in the order they are awaited. As an async context manager: leaving the
    block normally ends the stream, leaving it with an exception aborts it (``UserError``,
    the exception's text and class name); the handle is released either way.
    """

    def __init__(self, core: Any, handle: Any, group: str) -> None:
        super().__init__(core, handle, group)
        self._lock = asyncio.Lock()

    async def write(
        self, data: Any, data_type: Union[WebPubSubDataType, str], *, timeout: Optional[float] = None
    ) -> None:
        """Send one fragment; waits (without blocking the loop) while the stream's buffer is
        full, at most ``timeout`` seconds (default: the client's ack timeout)."""
        raw, native_type = self._encode(data, data_type)
        limit = timeout_ms(timeout)
        lib, handle = self._lib, self._handle
        async with self._lock:
            code = lib.wps_stream_write(handle, raw, len(raw), native_type, 1)
            if code == n.WPS_OK:
                return
            if code != n.WPS_ERR_TIMEOUT:
                raise stream_failure(f"write to stream {self.stream_id!r}", code)

            def call() -> Optional[Exception]:
                c = lib.wps_stream_write(handle, raw, len(raw), native_type, limit)
                return None if c == n.WPS_OK else stream_failure(f"write to stream {self.stream_id!r}", c)

            await _in_executor(call)

    async def end(self, *, timeout: Optional[float] = None) -> None:
        """End the stream; returns once the service confirmed it."""
        limit = timeout_ms(timeout)
        lib, handle = self._lib, self._handle

        def call() -> Optional[Exception]:
            c = lib.wps_stream_end(handle, limit)
            return None if c == n.WPS_OK else stream_failure(f"end stream {self.stream_id!r}", c)

        async with self._lock:
            await _in_executor(call)

    async def abort(
        self, message: Optional[str] = None, user_error_code: Optional[str] = None, *, timeout: Optional[float] = None
    ) -> None:
        """End the stream with ``UserError``, ``message`` and ``user_error_code``."""
        raw_msg = None if message is None else n.encode_identifier(message, "message")
        raw_code = None if user_error_code is None else n.encode_identifier(user_error_code, "user_error_code")
        limit = timeout_ms(timeout)
        lib, handle = self._lib, self._handle

        def call() -> Optional[Exception]:
            c = lib.wps_stream_abort(handle, raw_msg, raw_code, limit)
            return None if c == n.WPS_OK else stream_failure(f"abort stream {self.stream_id!r}", c)

        async with self._lock:
            await _in_executor(call)

    async def __aenter__(self) -> "AsyncGroupStreamWriter":
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        try:
            if exc_type is None:
                await self.end()
            else:
                try:
                    await self.abort(str(exc_val) or exc_type.__name__, exc_type.__name__)
                except Exception:  # noqa: BLE001 - the original exception is the one to see
                    pass
        finally:
            self.close()


class AsyncGroupStreamReader(ReaderBase):
    """The fragments of one received group stream, in order, for ``async for``.

    Yields :class:`StreamFragment` objects, stops at a clean end, and raises
    :class:`GroupStreamError` when the stream failed. One task reads a reader at a time.
    See the module documentation for the buffering bound.
    """

    def __init__(self, group: str, stream_id: str, from_user_id: Optional[str], max_fragments: int, sink: Any) -> None:
        super().__init__(group, stream_id, from_user_id, max_fragments)
        self._sink = sink
        self._waiter: "Optional[asyncio.Future[None]]" = None
        self._pausing = False

    # -- the dispatching side (loop thread; other threads are handed over to it)

    def push(self, fragment: StreamFragment) -> None:
        self._sink.run_on_loop(self._push, fragment)

    def finish(self, error: Optional[GroupStreamError]) -> None:
        self._sink.run_on_loop(self._finish, error)

    def _push(self, fragment: StreamFragment) -> None:
        if self._ended or self._closed:
            return
        self._items.append(fragment)
        if len(self._items) >= self._max and not self._pausing:
            self._pausing = True
            self._sink.pause_for(self)
        self._wake()

    def _finish(self, error: Optional[GroupStreamError]) -> None:
        if self._ended:
            return
        self._ended = True
        self._error = error
        self._unpause()
        self._wake()

    def overflow(self) -> None:
        """The pause for this reader expired (called by the sink, which resumes dispatching)."""
        self._pausing = False
        if not self._ended:
            self._ended = True
            self._error = _overflow_error()
            self._wake()

    def _unpause(self) -> None:
        if self._pausing:
            self._pausing = False
            self._sink.resume_for(self)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the reading side

    async def read(self, timeout: Optional[float] = None) -> Optional[StreamFragment]:
        """The next fragment; ``None`` after a clean end.

        :raises GroupStreamError: the stream failed (after its buffered fragments).
        :raises TimeoutError: nothing arrived within ``timeout`` seconds.
        """
        if not self._items and not self._ended and not self._closed:
            waiter: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await asyncio.wait_for(waiter, timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no fragment of stream {self.stream_id!r} within {timeout} s") from None
            finally:
                self._waiter = None
        if self._items:
            fragment = self._items.popleft()
            if self._pausing and len(self._items) < self._max:
                self._unpause()
            return fragment
        if self._error is not None and not self._closed:
            raise self._error
        return None

    def __aiter__(self) -> "AsyncGroupStreamReader":
        return self

    async def __anext__(self) -> StreamFragment:
        fragment = await self.read()
        if fragment is None:
            raise StopAsyncIteration
        return fragment

    def close(self) -> None:
        """Stop reading: buffered fragments are dropped and later ones discarded."""
        self._closed = True
        self._items.clear()
        self._unpause()
        self._wake()


__all__ = ["AsyncGroupStreamWriter", "AsyncGroupStreamReader"]
