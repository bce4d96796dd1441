"""The asyncio client: ``webpubsub_client.aio.WebPubSubClient``.

Same public API as ``azure.messaging.webpubsubclient.aio.WebPubSubClient`` 1.1.0, driven
entirely from the event loop: the native client runs in poll mode, its event file descriptor
is watched with ``loop.add_reader``, and the reader runs the library's dispatch call, which
invokes the event trampoline on the loop thread. Operations use the library's ``_async``
functions; their completions arrive through the same dispatch and resolve asyncio futures
directly. No thread is started per callback or per call.

Listeners (plain functions or coroutine functions) run in order, one at a time, in one task
per client; a listener may await any client method.
"""

import asyncio
import collections
import ctypes
import inspect
import itertools
import logging
import threading
import weakref
from typing import Any, Awaitable, Callable, Deque, Dict, List, Optional, Set, Tuple, Union

from .. import _native as n
from .._core import ClientCore, Completion, create_core, open_error, send_error
from .._operations import client_settings, group_op, send_op, state_json
from .._options import seconds_to_ms
from .._streams import timeout_ms
from ._streams import AsyncGroupStreamReader, AsyncGroupStreamWriter, open_stream
from ..models._enums import CallbackType, RetryMode, WebPubSubDataType, WebPubSubProtocolType
from ..models._errors import OpenClientError
from ..models._models import GroupStateRecord, WebPubSubClientOptions

_LOGGER = logging.getLogger("webpubsub_client")

get_running_loop = asyncio.get_running_loop
get_ident = threading.get_ident

_DISPATCH_BATCH = 64
_PROVIDER_WAIT_S = 60.0


class WebPubSubClientCredential:
    """Where the asyncio client gets its client access URL.

    :param client_access_url_provider: A URL, or an ``async`` callable returning a fresh URL
        (a plain callable returning a ``str`` is accepted too). It is called for every new
        connection (open and reconnect), not for recovery.
    """

    def __init__(self, client_access_url_provider: Union[str, Callable[[], Awaitable[str]]]) -> None:
        if isinstance(client_access_url_provider, str):
            self._fixed_url: Optional[str] = client_access_url_provider
            self._provider: Optional[Callable[[], Any]] = None
        elif callable(client_access_url_provider):
            self._fixed_url = None
            self._provider = client_access_url_provider
        else:
            raise TypeError("client_access_url_provider must be a str or an async callable returning a str")

    async def get_client_access_url(self) -> str:
        """Return a client access URL (awaits the provider)."""
        if self._fixed_url is not None:
            return self._fixed_url
        assert self._provider is not None
        value = self._provider()
        if inspect.isawaitable(value):
            value = await value
        return value


class _LoopSink:
    """Receives converted events on the loop thread (inside dispatch) and runs listeners in order."""

    def __init__(self) -> None:
        self.core: Optional[ClientCore] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.loop_thread: Optional[int] = None
        self.fd: int = -1
        self.futures: Dict[int, "asyncio.Future[Completion]"] = {}
        self.op_keys = itertools.count(1)
        self.pending: Deque[Tuple[CallbackType, Tuple[Any, ...]]] = collections.deque()
        self.wakeup: Optional[asyncio.Event] = None
        self.worker: Optional["asyncio.Task[None]"] = None
        self.cached_url: Optional[str] = None
        self.credential: Optional[WebPubSubClientCredential] = None
        # readers that are full: while any is, events are not dispatched (back-pressure)
        self.paused_by: Set[AsyncGroupStreamReader] = set()
        self.pause_timer: Optional[asyncio.TimerHandle] = None

    # -- binding to the running loop

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch the client's event fd on ``loop`` and start the listener task there."""
        if self.loop is loop and self.worker is not None and not self.worker.done():
            return
        self.detach()
        core = self.core
        assert core is not None
        fd = int(core.lib.wps_client_get_fd(core.handle))
        if fd < 0:
            raise OpenClientError("the native client has no event file descriptor (poll mode)")
        self.loop = loop
        self.loop_thread = threading.get_ident()
        self.fd = fd
        self.wakeup = asyncio.Event()
        loop.add_reader(fd, self.on_readable)
        self.worker = loop.create_task(self.run_listeners(), name="webpubsub_client listeners")

    def detach(self) -> None:
        """Stop watching the fd and stop the listener task (on the loop's thread, if it is running)."""
        loop, self.loop = self.loop, None
        worker, self.worker = self.worker, None
        futures, self.futures = self.futures, {}
        self.paused_by.clear()
        if self.pause_timer is not None:
            self.pause_timer.cancel()
            self.pause_timer = None
        if loop is None or loop.is_closed():
            return
        for fut in futures.values():
            if not fut.done():
                fut.cancel()
        try:
            loop.remove_reader(self.fd)
        except (RuntimeError, ValueError, OSError):
            pass
        if worker is not None and not worker.done():
            worker.cancel()

    def on_readable(self) -> None:
        core = self.core
        if core is None or core.freed or self.paused_by:
            return
        out = ctypes.c_uint32(0)
        code = core.lib.wps_client_dispatch(core.handle, _DISPATCH_BATCH, 0, ctypes.byref(out))
        if code != n.WPS_OK:
            message, _ = n.last_error()
            _LOGGER.debug("dispatch: %s: %s", n.result_name(code), message)

    # -- EventSink

    def _on_loop_thread(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` now if this is the loop's thread (inside dispatch), else hand it to the loop.

        Events only leave the loop thread when the client is freed from elsewhere (a finalizer
        or interpreter exit), where the library delivers what is left on the freeing thread.
        """
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if self.loop_thread == threading.get_ident():
            fn(*args)
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop closed meanwhile

    def deliver(self, kind: CallbackType, args: Tuple[Any, ...]) -> None:
        self._on_loop_thread(self._enqueue, kind, args)

    run_on_loop = _on_loop_thread

    # -- stream readers and their back-pressure

    def new_reader(self, group: str, stream_id: str, from_user_id: Optional[str]) -> AsyncGroupStreamReader:
        core = self.core
        assert core is not None
        return AsyncGroupStreamReader(group, stream_id, from_user_id, core.reader_max_fragments, self)

    def pause_for(self, reader: AsyncGroupStreamReader) -> None:
        """``reader`` is full: stop dispatching until it has room (bounded by the reader wait)."""
        first = not self.paused_by
        self.paused_by.add(reader)
        loop = self.loop
        if first and loop is not None and not loop.is_closed():
            try:
                loop.remove_reader(self.fd)
            except (RuntimeError, ValueError, OSError):
                pass
            core = self.core
            wait_s = core.reader_wait_s if core is not None else 30.0
            self.pause_timer = loop.call_later(wait_s, self._pause_expired)

    def resume_for(self, reader: AsyncGroupStreamReader) -> None:
        if reader not in self.paused_by:
            return
        self.paused_by.discard(reader)
        if not self.paused_by:
            self._resume()

    def _pause_expired(self) -> None:
        self.pause_timer = None
        readers, self.paused_by = list(self.paused_by), set()
        for reader in readers:
            reader.overflow()
        self._resume()

    def _resume(self) -> None:
        if self.pause_timer is not None:
            self.pause_timer.cancel()
            self.pause_timer = None
        loop = self.loop
        if loop is None or loop.is_closed() or self.fd < 0:
            return
        loop.add_reader(self.fd, self.on_readable)
        loop.call_soon(self.on_readable)

    def _enqueue(self, kind: CallbackType, args: Tuple[Any, ...]) -> None:
        self.pending.append((kind, args))
        if self.wakeup is not None:
            self.wakeup.set()

    def complete(self, op_key: int, completion: Completion) -> None:
        if self.loop_thread == threading.get_ident() and self.loop is not None:
            fut = self.futures.pop(op_key, None)
            if fut is not None and not fut.done():
                fut.set_result(completion)
            return
        self._on_loop_thread(self._resolve, op_key, completion)

    def _resolve(self, op_key: int, completion: Completion) -> None:
        fut = self.futures.pop(op_key, None)
        if fut is not None and not fut.done():
            fut.set_result(completion)

    async def run_listeners(self) -> None:
        assert self.wakeup is not None
        while True:
            while not self.pending:
                self.wakeup.clear()
                await self.wakeup.wait()
            kind, args = self.pending.popleft()
            core = self.core
            if core is None:
                continue
            for listener in core.listeners.snapshot(kind):
                try:
                    result = listener(*args)
                    if inspect.isawaitable(result):
                        await result
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001
                    _LOGGER.exception("listener for %r raised", kind.value)

    # -- operations

    def new_operation(self) -> Tuple[int, "asyncio.Future[Completion]"]:
        assert self.loop is not None
        key = next(self.op_keys)
        fut: "asyncio.Future[Completion]" = self.loop.create_future()
        self.futures[key] = fut
        return key, fut

    # -- URL provider (called by the library on its own threads)

    def provide_url(self) -> str:
        cached, self.cached_url = self.cached_url, None
        if cached is not None:
            return cached
        loop, credential = self.loop, self.credential
        if loop is None or credential is None or loop.is_closed():
            raise RuntimeError("no event loop to run the client access URL provider on")
        if self.loop_thread == threading.get_ident():
            raise RuntimeError("the URL provider cannot run on the event loop thread")
        future = asyncio.run_coroutine_threadsafe(credential.get_client_access_url(), loop)
        return future.result(timeout=_PROVIDER_WAIT_S)


def _finalize(core: ClientCore, sink: _LoopSink) -> None:
    loop = sink.loop
    if loop is not None and not loop.is_closed():
        if sink.loop_thread == threading.get_ident():
            sink.detach()
        else:
            try:
                loop.call_soon_threadsafe(sink.detach)
            except RuntimeError:
                pass
    core.release()


class WebPubSubClient:
    """An asyncio client connection to Azure Web PubSub (or a compatible service).

    Takes the same arguments as :class:`webpubsub_client.WebPubSubClient`; every method that
    talks to the service is a coroutine.
    """

    def __init__(
        self,
        credential: Union[WebPubSubClientCredential, str],
        options: Optional[WebPubSubClientOptions] = None,
        *,
        message_retry_backoff_factor: float = 0.8,
        message_retry_backoff_max: float = 120.0,
        message_retry_mode: RetryMode = RetryMode.Exponential,
        message_retry_total: int = 3,
        protocol_type: WebPubSubProtocolType = WebPubSubProtocolType.JSON_RELIABLE,
        reconnect_retry_backoff_factor: float = 0.8,
        reconnect_retry_backoff_max: float = 120.0,
        reconnect_retry_mode: RetryMode = RetryMode.Exponential,
        reconnect_retry_total: int = 3,
        auto_rejoin_groups: bool = True,
        logging_enable: bool = False,
        ack_timeout: float = 30.0,
        start_timeout: float = 30.0,
        user_agent: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        self._settings = client_settings(options, locals(), kwargs)
        lib = n.get_lib()
        needed = (
            "wps_options_set_dispatch_mode",
            "wps_client_get_fd",
            "wps_client_dispatch",
            "wps_client_start_async",
            "wps_client_stop_async",
            "wps_join_group_async",
            "wps_leave_group_async",
            "wps_send_to_group_async",
            "wps_send_event_async",
        )
        if not lib.has(*needed):
            missing = [name for name in needed if getattr(lib, name) is None]
            raise RuntimeError(
                "the native library lacks the poll/async API the asyncio client needs: " + ", ".join(missing)
            )
        sink = _LoopSink()
        if isinstance(credential, str):
            url: Optional[str] = credential
            provider: Optional[Callable[[], str]] = None
        elif isinstance(credential, WebPubSubClientCredential):
            url = credential._fixed_url
            provider = None if url is not None else sink.provide_url
            sink.credential = credential
        else:
            raise TypeError("type of credential must be str or WebPubSubClientCredential")
        self._core = create_core(self._settings, url, provider, sink, poll_mode=True)
        sink.core = self._core
        self._sink = sink
        self._finalizer = weakref.finalize(self, _finalize, self._core, sink)

    # -- lifetime

    async def open(self) -> None:
        """Connect to the service; returns once connected.

        :raises OpenClientError: already open, connection failure, or ``start_timeout`` passed.
        """
        core, sink = self._core, self._sink
        if core.freed:
            raise OpenClientError("the client has been disposed")
        loop = asyncio.get_running_loop()
        sink.attach(loop)
        if sink.credential is not None and sink.credential._fixed_url is None:
            sink.cached_url = await sink.credential.get_client_access_url()
        key, fut = sink.new_operation()
        code = core.lib.wps_client_start_async(
            core.handle, seconds_to_ms(self._settings.start_timeout), n.NO_COMPLETION, ctypes.c_void_p(key)
        )
        if code != n.WPS_OK:
            sink.futures.pop(key, None)
            message, _ = n.last_error()
            raise open_error(code, message)
        done = await fut
        if done.result != n.WPS_OK:
            raise open_error(done.result, done.message)

    async def close(self) -> None:
        """Stop the client; a no-op when it is not open. ``stopped`` is the last event."""
        core, sink = self._core, self._sink
        if core.freed:
            return
        sink.attach(asyncio.get_running_loop())
        key, fut = sink.new_operation()
        code = core.lib.wps_client_stop_async(core.handle, n.NO_COMPLETION, ctypes.c_void_p(key))
        if code != n.WPS_OK:
            sink.futures.pop(key, None)
            return
        await fut

    async def __aenter__(self) -> "WebPubSubClient":
        await self.open()
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self.close()

    def is_connected(self) -> bool:
        """Whether the client is connected to the service now."""
        return self._core.is_connected()

    def get_stats(self) -> Dict[str, Any]:
        """The client's counters and state, read without any lock (beyond the official SDK).

        Keys: ``state`` (``"stopped"``, ``"connecting"``, ``"connected"``, ``"recovering"``,
        ``"reconnecting"``, ``"stopping"``) and the integers ``messages_sent``,
        ``messages_received``, ``bytes_sent``, ``bytes_received``, ``acks_ok``, ``acks_failed``,
        ``retries``, ``duplicates``, ``connects``, ``recoveries``, ``session_losses``,
        ``queued_messages``, ``queued_bytes``, ``inflight_acks``, ``last_ping_rtt_us``.
        """
        return self._core.get_stats()

    @property
    def connection_id(self) -> Optional[str]:
        """The current connection id (unchanged by a recovery, new after a reconnect)."""
        return self._core.connection_id()

    # -- listeners

    async def subscribe(self, event: Union[CallbackType, str], listener: Callable[..., Any], **kwargs: Any) -> None:
        """Add ``listener`` (function or coroutine function) for ``event``."""
        self._core.listeners.add(event, listener)

    async def unsubscribe(self, event: Union[CallbackType, str], listener: Callable[..., Any], **kwargs: Any) -> None:
        """Remove ``listener`` from ``event``."""
        self._core.listeners.remove(event, listener)

    def on(self, event: Union[CallbackType, str], listener: Callable[..., Any]) -> None:
        """Add ``listener`` for ``event`` without awaiting (seed README spelling)."""
        self._core.listeners.add(event, listener)

    def off(self, event: Union[CallbackType, str], listener: Callable[..., Any]) -> None:
        """Remove ``listener`` from ``event`` without awaiting."""
        self._core.listeners.remove(event, listener)

    # -- operations

    def _start(
        self, what: str, name: str, start: Callable[..., int], args: Tuple[Any, ...]
    ) -> "asyncio.Future[Completion]":
        """Start an ``_async`` operation (``start(handle, *args, completion, context, out)``) and
        return the future its completion resolves; ``what`` and ``name`` describe it in errors."""
        core, sink = self._core, self._sink
        if core.freed:
            raise send_error(f"{what} {name!r}", 0, 0, "the client has been disposed", "ClientDisposed")
        loop = sink.loop
        worker = sink.worker
        # Same as comparing with asyncio.get_running_loop() (which makes a getpid() system
        # call): a loop that runs in this thread is the running loop.
        if (
            loop is None
            or getattr(loop, "_thread_id", None) != get_ident()
            or worker is None
            or worker.done()
        ):
            loop = get_running_loop()
            sink.attach(loop)
        key = next(sink.op_keys)
        fut: "asyncio.Future[Completion]" = loop.create_future()
        futures = sink.futures
        futures[key] = fut
        # No out-parameter: an accepted operation's ack id comes with its completion, and a
        # call that fails has not allocated one. An accepted operation completes exactly once,
        # which removes its future (also when the awaiting task was cancelled meanwhile).
        code = start(core.handle, *args, n.NO_COMPLETION, key, None)
        if code != n.WPS_OK:
            futures.pop(key, None)
            message, error_name = n.last_error()
            raise send_error(f"{what} {name!r}", code, 0, message, error_name)
        return fut

    async def _run(self, what: str, name: str, start: Callable[..., int], *args: Any) -> None:
        done = await self._start(what, name, start, args)
        if done.result != n.WPS_OK:
            raise send_error(f"{what} {name!r}", done.result, done.ack_id, done.message, done.error_name)

    async def join_group(
        self, group_name: str, options: Any = None, *, ack_id: Optional[int] = None, **kwargs: Any
    ) -> None:
        """Join ``group_name``; returns once the service acked it.

        :raises SendMessageError: carrying the ack id and the error detail.
        """
        op = group_op(group_name, options, ack_id)
        await self._run("join group", group_name, self._core.lib.wps_join_group_async, op.group, op.ack_id)

    async def leave_group(
        self, group_name: str, options: Any = None, *, ack_id: Optional[int] = None, **kwargs: Any
    ) -> None:
        """Leave ``group_name``; returns once the service acked it.

        :raises SendMessageError: carrying the ack id and the error detail.
        """
        op = group_op(group_name, options, ack_id)
        await self._run("leave group", group_name, self._core.lib.wps_leave_group_async, op.group, op.ack_id)

    async def send_to_group(
        self,
        group_name: str,
        content: Union[str, memoryview, bytes, Dict[str, Any], Any],
        data_type: Union[WebPubSubDataType, str],
        options: Any = None,
        *,
        ack: bool = True,
        no_echo: bool = False,
        ack_id: Optional[int] = None,
        fire_and_forget: Optional[bool] = None,
        **kwargs: Any,
    ) -> None:
        """Send ``content`` to ``group_name`` (see the sync client for the keywords).

        :raises SendMessageError: carrying the ack id and the error detail.
        """
        op = send_op(
            group_name,
            "group_name",
            content,
            data_type,
            options,
            ack=ack,
            no_echo=no_echo,
            ack_id=ack_id,
            fire_and_forget=fire_and_forget,
        )
        # _start + check inline (not _run): one coroutine fewer per message
        done = await self._start("send to group", group_name, self._core.lib.wps_send_to_group_async, op)
        if done.result != n.WPS_OK:
            raise send_error(f"send to group {group_name!r}", done.result, done.ack_id, done.message, done.error_name)

    async def send_event(
        self,
        event_name: str,
        content: Union[str, memoryview, bytes, Dict[str, Any], Any],
        data_type: Union[WebPubSubDataType, str],
        options: Any = None,
        *,
        ack: bool = True,
        ack_id: Optional[int] = None,
        fire_and_forget: Optional[bool] = None,
        **kwargs: Any,
    ) -> None:
        """Send a custom event to the service's event handler.

        :raises SendMessageError: carrying the ack id and the error detail.
        """
        op = send_op(
            event_name,
            "event_name",
            content,
            data_type,
            options,
            ack=ack,
            no_echo=False,
            ack_id=ack_id,
            fire_and_forget=fire_and_forget,
        )
        # _start + check inline (not _run): one coroutine fewer per message
        done = await self._start("send event", event_name, self._core.lib.wps_send_event_async, op)
        if done.result != n.WPS_OK:
            raise send_error(f"send event {event_name!r}", done.result, done.ack_id, done.message, done.error_name)

    # -- group streams (beyond the official Python SDK)

    async def open_group_stream(
        self,
        group_name: str,
        stream_id: Optional[str] = None,
        *,
        no_echo: bool = False,
        idle_timeout_ms: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> AsyncGroupStreamWriter:
        """Open a stream to ``group_name``; returns once the service accepted it (see the sync
        client for the arguments).

        :raises SendMessageError: the service refused, timeout, not connected.
        """
        core = self._core
        handle = await open_stream(core, group_name, stream_id, no_echo, idle_timeout_ms, timeout_ms(timeout))
        return AsyncGroupStreamWriter(core, handle, group_name)

    def on_group_stream(self, listener: Callable[[AsyncGroupStreamReader], Any]) -> None:
        """Call ``listener`` (function or coroutine function) with an
        :class:`~webpubsub_client.aio.AsyncGroupStreamReader` for every new incoming group
        stream (same as ``on("group-stream", listener)``). Listeners run one at a time: read
        the stream in a task of its own (``asyncio.create_task``), not in the listener."""
        self._core.listeners.add(CallbackType.GROUP_STREAM, listener)

    # -- group state (beyond the official Python SDK)

    def _group_state_fn(self, name: str) -> Callable[..., int]:
        fn = getattr(self._core.lib, name)
        if fn is None:
            raise RuntimeError("the native library has no group state")
        return fn

    async def set_group_state(self, group_name: str, state: Dict[str, str], *, ack_id: Optional[int] = None) -> None:
        """Set this connection's state in ``group_name`` (see the sync client)."""
        raw = state_json(state)
        op = group_op(group_name, None, ack_id)
        fn = self._group_state_fn("wps_set_group_state_async")
        await self._run("set group state", group_name, fn, op.group, raw, op.ack_id)
        self._core.set_own_state(group_name, state)

    async def clear_group_state(self, group_name: str, *, ack_id: Optional[int] = None) -> None:
        """Clear this connection's state in ``group_name``."""
        op = group_op(group_name, None, ack_id)
        fn = self._group_state_fn("wps_set_group_state_async")
        await self._run("clear group state", group_name, fn, op.group, None, op.ack_id)
        self._core.set_own_state(group_name, None)

    def get_group_state(self, group_name: str) -> Optional[Dict[str, str]]:
        """This connection's own state in ``group_name`` as last set (a copy), or ``None``."""
        return self._core.own_state(group_name)

    async def subscribe_group_state(self, group_name: str, *, ack_id: Optional[int] = None) -> None:
        """Subscribe to ``group_name``'s state (see the sync client)."""
        core = self._core
        op = group_op(group_name, None, ack_id)
        fn = self._group_state_fn("wps_subscribe_group_state_async")
        _, created = core.state_cache_for_subscribe(group_name)
        try:
            await self._run("subscribe group state", group_name, fn, op.group, op.ack_id)
        except BaseException:
            if created:
                core.drop_state_cache(group_name)
            raise

    async def unsubscribe_group_state(self, group_name: str, *, ack_id: Optional[int] = None) -> None:
        """End the subscription to ``group_name``'s state and drop its cached view."""
        op = group_op(group_name, None, ack_id)
        fn = self._group_state_fn("wps_unsubscribe_group_state_async")
        await self._run("unsubscribe group state", group_name, fn, op.group, op.ack_id)
        self._core.drop_state_cache(group_name)

    def list_group_states(self, group_name: str) -> List[GroupStateRecord]:
        """Copies of the cached records of ``group_name`` that have a state.

        :raises WebPubSubClientError: the group's state is not subscribed.
        """
        return self._core.list_group_states(group_name)


__all__ = ["WebPubSubClient", "WebPubSubClientCredential"]
