"""The part of a client shared by the sync and asyncio front ends.

A :class:`ClientCore` owns one native ``wps_client*``. The library calls one module-level
trampoline for every event; its ``user_data`` is a small integer key into :data:`_REGISTRY`,
never a Python object address, so a late callback can never reach freed memory. The core
copies everything out of the borrowed ``wps_event`` before handing plain Python objects to
its sink (the sync or asyncio client), and catches every exception so none crosses into C.

The core holds no reference to the public client object: a client nobody references is freed
by its ``weakref.finalize``, and :func:`_close_all_at_exit` stops and frees every client still
alive before interpreter shutdown.
"""

import atexit
import ctypes
import itertools
import json
import logging
import os
import re
import threading
from typing import Any, Callable, Dict, List, Optional, Protocol, Set, Tuple

from . import _native as n
from . import _payload
from ._logging import disable_native_logging, enable_native_logging
from ._options import ClientSettings, build_native_options
from .models._enums import CallbackType
from ._group_state import GroupStateCache, records_from_json
from .models._errors import (
    AckMessageError,
    GroupStreamError,
    OpenClientError,
    SendMessageError,
    WebPubSubClientError,
)
from .models._models import (
    GroupStateRecord,
    OnGroupStateArgs,
    StreamFragment,
    OnConnectedArgs,
    OnDisconnectedArgs,
    OnGroupDataMessageArgs,
    OnRecoveredArgs,
    OnRecoveringArgs,
    OnRejoinGroupFailedArgs,
    OnServerDataMessageArgs,
    OnSessionLostArgs,
)

_LOGGER = logging.getLogger("webpubsub_client")

_NATIVE_TO_CALLBACK = {
    n.WPS_EVENT_CONNECTED: CallbackType.CONNECTED,
    n.WPS_EVENT_DISCONNECTED: CallbackType.DISCONNECTED,
    n.WPS_EVENT_STOPPED: CallbackType.STOPPED,
    n.WPS_EVENT_SERVER_MESSAGE: CallbackType.SERVER_MESSAGE,
    n.WPS_EVENT_GROUP_MESSAGE: CallbackType.GROUP_MESSAGE,
    n.WPS_EVENT_REJOIN_GROUP_FAILED: CallbackType.REJOIN_GROUP_FAILED,
    n.WPS_EVENT_RECOVERING: CallbackType.RECOVERING,
    n.WPS_EVENT_RECOVERED: CallbackType.RECOVERED,
    n.WPS_EVENT_SESSION_LOST: CallbackType.SESSION_LOST,
}

# Event types a library older than this package may not know (registering them fails there
# with WPS_ERR_INVALID_ARG; such a library never raises them).
_OPTIONAL_EVENTS = {
    n.WPS_EVENT_RECOVERING,
    n.WPS_EVENT_RECOVERED,
    n.WPS_EVENT_SESSION_LOST,
    n.WPS_EVENT_STREAM,
    n.WPS_EVENT_GROUP_STATE,
}


class Completion:
    """The outcome of an asynchronous native operation (copied out of its event)."""

    __slots__ = ("result", "ack_id", "is_duplicate", "message", "error_name")

    def __init__(self, result: int, ack_id: int, is_duplicate: bool, message: Optional[str], error_name: Optional[str]):
        self.result = result
        self.ack_id = ack_id
        self.is_duplicate = is_duplicate
        self.message = message
        self.error_name = error_name


# Successful completions share one object: on success only ``result`` is read (an ack id is
# only reported with errors).
_SUCCEEDED = Completion(0, 0, False, None, None)


class EventSink(Protocol):
    """Where a core sends converted events."""

    def deliver(self, kind: CallbackType, args: Tuple[Any, ...]) -> None:
        """A client event for the listeners of ``kind`` (``args`` are the listener's arguments)."""

    def complete(self, op_key: int, completion: Completion) -> None:
        """The completion of the asynchronous operation registered under ``op_key``."""

    def new_reader(self, group: str, stream_id: str, from_user_id: Optional[str]) -> Any:
        """A reader for a new incoming group stream (``push``/``finish`` feed it)."""


# --- listeners ----------------------------------------------------------------------------


class Listeners:
    """Listeners per event kind; add/remove at any time from any thread, including callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_kind: Dict[CallbackType, List[Callable[..., Any]]] = {k: [] for k in CallbackType}

    @staticmethod
    def kind_of(event: Any) -> CallbackType:
        """Normalise an event name (``CallbackType`` or its string value)."""
        try:
            return CallbackType(event)
        except ValueError:
            raise ValueError(f"unknown event {event!r}; expected one of {[k.value for k in CallbackType]}") from None

    def add(self, event: Any, listener: Callable[..., Any]) -> None:
        if not callable(listener):
            raise TypeError("listener must be callable")
        kind = self.kind_of(event)
        with self._lock:
            self._by_kind[kind] = self._by_kind[kind] + [listener]

    def remove(self, event: Any, listener: Callable[..., Any]) -> None:
        kind = self.kind_of(event)
        with self._lock:
            current = self._by_kind[kind]
            if listener in current:
                copy = list(current)
                copy.remove(listener)
                self._by_kind[kind] = copy

    def snapshot(self, kind: CallbackType) -> List[Callable[..., Any]]:
        """The listeners of ``kind`` at this moment (an immutable copy)."""
        return self._by_kind[kind]

    def any(self, kind: CallbackType) -> bool:
        return bool(self._by_kind[kind])


# --- registry and trampolines -------------------------------------------------------------

_REGISTRY: Dict[int, "ClientCore"] = {}
_REGISTRY_LOCK = threading.Lock()
_KEYS = itertools.count(1)


# Library threads that run callbacks keep a Python thread state from their first callback on.
# Without it, every callback on a thread Python did not start creates a thread state and
# destroys it again on return (allocation, an interpreter-wide lock, and a frame stack mapped
# and unmapped), which costs more than the callback itself. The thread state is taken once
# with PyGILState_Ensure and never released; Python threads are left alone.
_threads_seen: Set[int] = set()
_python_threads: Optional[Dict[int, Any]] = getattr(threading, "_active", None)
get_ident = threading.get_ident


def _keep_thread_state() -> None:
    ident = get_ident()
    _threads_seen.add(ident)
    if _python_threads is not None and ident not in _python_threads:
        ctypes.pythonapi.PyGILState_Ensure()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_threads_seen.clear)


def _on_event(user_data: Optional[int], ev_address: Optional[int]) -> None:
    try:
        if get_ident() not in _threads_seen:
            _keep_thread_state()
        core = _REGISTRY.get(user_data or 0)
        if core is not None and ev_address:
            core.delivering_thread = get_ident()
            try:
                core.handle_event(_event_at(ev_address))
            finally:
                core.delivering_thread = 0
    except BaseException:  # noqa: BLE001 - nothing may unwind into C
        _LOGGER.exception("error while handling a native event")


def _on_provide_url(user_data: Optional[int], buf: Any, cap: int, out_len: Any) -> int:
    """``wps_url_provider_fn``: write a fresh NUL-terminated URL into ``buf``.

    When ``cap`` is too small the needed size is reported and the library calls again with a
    bigger buffer; the URL fetched the first time is kept for that second call.
    """
    try:
        core = _REGISTRY.get(user_data or 0)
        if core is None or core.url_provider is None:
            return n.WPS_ERR_URL_PROVIDER
        raw = core.pending_url
        if raw is None:
            url = core.url_provider()
            if not isinstance(url, str):
                raise TypeError("the client access URL provider must return a str")
            raw = url.encode("utf-8") + b"\0"
            if raw.count(b"\0") != 1:
                raise ValueError("the client access URL contains NUL characters")
        if out_len:
            out_len[0] = len(raw)
        if len(raw) > cap:
            core.pending_url = raw
            return n.WPS_ERR_BUFFER_TOO_SMALL
        core.pending_url = None
        ctypes.memmove(buf, raw, len(raw))
        return n.WPS_OK
    except BaseException:  # noqa: BLE001
        _LOGGER.exception("the client access URL provider failed")
        return n.WPS_ERR_URL_PROVIDER


_EVENT_CB = n.EVENT_FN(_on_event)
# Size of a ``wps_event`` that carries every field this package reads.
_FULL_EVENT_SIZE = n.wps_event.is_duplicate.offset + n.wps_event.is_duplicate.size
string_at = ctypes.string_at
_event_at = n.wps_event.from_address
_PROVIDER_CB = n.URL_PROVIDER_FN(_on_provide_url)


# --- errors -------------------------------------------------------------------------------


# The native message of a negative ack reads "service rejected ack N: NAME" or
# "service rejected ack N: NAME: MESSAGE" (src/error.rs, ``Error::Ack``).
_ACK_MESSAGE = re.compile(r"service rejected ack \d+: (?P<name>[^:]*)(?:: (?P<message>.*))?", re.DOTALL)


def service_message(message: Optional[str], error_name: Optional[str]) -> Optional[str]:
    """The service's own message of a negative ack (as the official client's
    ``error_detail.message``), without the library's "service rejected ack N: NAME: " prefix;
    other messages unchanged."""
    if message and error_name:
        m = _ACK_MESSAGE.fullmatch(message)
        if m is not None and m.group("name") == error_name:
            return m.group("message") or ""
    return message


def send_error(
    what: str, code: int, ack_id: int, message: Optional[str], error_name: Optional[str]
) -> SendMessageError:
    """The :class:`SendMessageError` for a failed operation."""
    code_name = n.result_name(code)
    text = service_message(message, error_name)
    detail = AckMessageError(name=error_name or code_name, message=n.result_text(code) if text is None else text)
    return SendMessageError(
        f"{what} failed: {detail.name}{': ' + detail.message if detail.message else ''}",
        ack_id=ack_id or None,
        error_detail=detail,
        code=code,
    )


def open_error(code: int, message: Optional[str]) -> OpenClientError:
    """The :class:`OpenClientError` for a failed start. The message starts with the official
    client's wording ("During the process, an error occurred"), which code written for it may
    look for, followed by the native result and its detail."""
    return OpenClientError(
        f"During the process, an error occurred: {n.result_name(code)}: {message or n.result_text(code)}", code=code
    )


def check(code: int, what: str) -> None:
    """Raise :class:`WebPubSubClientError` for a failed call that is not an operation."""
    if code != n.WPS_OK:
        message, _ = n.last_error()
        raise WebPubSubClientError(
            f"{what}: {n.result_name(code)}: {message or n.result_text(code)}", code, n.result_name(code)
        )


# --- the core -----------------------------------------------------------------------------


class ClientCore:
    """One native client plus its listeners; knows nothing about threads or event loops."""

    def __init__(
        self,
        url: Optional[str],
        url_provider: Optional[Callable[[], str]],
        native_options: Any,
        sink: EventSink,
    ) -> None:
        self.lib = n.get_lib()
        self.listeners = Listeners()
        self.url_provider = url_provider
        self.sink = sink
        self.last_connection_id: Optional[str] = None
        self.pending_url: Optional[bytes] = None
        self.key = next(_KEYS)
        self.reader_max_fragments = 10_000
        # the thread running this client's event callback now (0 when none)
        self.delivering_thread = 0
        self.reader_wait_s = 30.0
        # incoming streams with a reader, by (group, stream id); touched on the event thread
        self.streams: Dict[Tuple[str, str], Any] = {}
        # group-state caches of subscribed groups, and this connection's own states
        self.state_lock = threading.Lock()
        self.state_caches: Dict[str, GroupStateCache] = {}
        self.own_states: Dict[str, Dict[str, str]] = {}
        self._freed = False
        self._free_lock = threading.Lock()
        handle = n.ClientP()
        with _REGISTRY_LOCK:
            _REGISTRY[self.key] = self
        try:
            if url is not None:
                code = self.lib.wps_client_new(url.encode("utf-8"), native_options, ctypes.byref(handle))
            else:
                code = self.lib.wps_client_new_with_provider(
                    _PROVIDER_CB, ctypes.c_void_p(self.key), native_options, ctypes.byref(handle)
                )
            if code != n.WPS_OK:
                message, _ = n.last_error()
                raise ValueError(f"cannot create the client: {n.result_name(code)}: {message or n.result_text(code)}")
            self.handle = handle
            for native_type in (*_NATIVE_TO_CALLBACK, n.WPS_EVENT_STREAM, n.WPS_EVENT_GROUP_STATE):
                if native_type in _OPTIONAL_EVENTS:
                    self.lib.wps_set_callback(handle, native_type, _EVENT_CB, ctypes.c_void_p(self.key))
                    continue
                check(
                    self.lib.wps_set_callback(handle, native_type, _EVENT_CB, ctypes.c_void_p(self.key)),
                    "wps_set_callback",
                )
            if self.lib.has("wps_join_group_async"):
                check(
                    self.lib.wps_set_callback(handle, n.WPS_EVENT_ACK, _EVENT_CB, ctypes.c_void_p(self.key)),
                    "wps_set_callback(ACK)",
                )
        except BaseException:
            with _REGISTRY_LOCK:
                _REGISTRY.pop(self.key, None)
            if handle:
                self.lib.wps_client_free(handle)
            raise

    # -- events

    def handle_event(self, ev: n.wps_event) -> None:
        """Convert a borrowed native event (copying everything) and pass it to the sink."""
        etype = ev.type
        if etype == n.WPS_EVENT_ACK:
            if ev.struct_size >= _FULL_EVENT_SIZE:
                result = ev.result
                if result == n.WPS_OK and not ev.is_duplicate:
                    completion = _SUCCEEDED
                else:
                    completion = Completion(
                        result, ev.ack_id, bool(ev.is_duplicate), n.decode(ev.message), n.decode(ev.error_name)
                    )
                self.sink.complete(ev.op_context or 0, completion)
                return
            op = n.event_field(ev, "op_context") or 0
            self.sink.complete(
                int(op),
                Completion(
                    int(n.event_field(ev, "result", 0)),
                    int(n.event_field(ev, "ack_id", 0) or 0),
                    bool(n.event_field(ev, "is_duplicate", 0)),
                    n.decode(ev.message),
                    n.decode(ev.error_name),
                ),
            )
            return
        if etype == n.WPS_EVENT_GROUP_MESSAGE:
            if not self.listeners.any(CallbackType.GROUP_MESSAGE):
                return
            size = ev.data_len
            data_type, data = _payload.decode(string_at(ev.data, size) if size else b"", ev.data_type)
            group = ev.group
            sender = ev.from_user_id
            self.sink.deliver(
                CallbackType.GROUP_MESSAGE,
                (
                    OnGroupDataMessageArgs(
                        data_type=data_type,
                        data=data,
                        group=group.decode("utf-8", "replace") if group is not None else "",
                        from_user_id=sender.decode("utf-8", "replace") if sender is not None else None,
                        sequence_id=ev.sequence_id or None,
                    ),
                ),
            )
            return
        if etype == n.WPS_EVENT_STREAM:
            self._on_stream_frame(ev)
            return
        if etype == n.WPS_EVENT_GROUP_STATE:
            self._on_group_state(ev)
            return
        kind = _NATIVE_TO_CALLBACK.get(etype)
        if kind is None:
            return  # a newer library's event type
        if kind is CallbackType.CONNECTED:
            self.last_connection_id = n.decode(ev.connection_id)
            # A new connection has no state of its own, and each subscription's cache is
            # refilled by the snapshot of its renewal.
            with self.state_lock:
                self.own_states.clear()
                caches = list(self.state_caches.values())
            for cache in caches:
                cache.clear()
        if not self.listeners.any(kind) and kind is not CallbackType.STOPPED:
            return
        args: Tuple[Any, ...]
        if kind is CallbackType.CONNECTED:
            args = (OnConnectedArgs(connection_id=self.last_connection_id or "", user_id=n.decode(ev.user_id)),)
        elif kind is CallbackType.DISCONNECTED:
            args = (
                OnDisconnectedArgs(
                    connection_id=n.decode(ev.connection_id) or self.last_connection_id, message=n.decode(ev.message)
                ),
            )
        elif kind is CallbackType.STOPPED:
            # Listeners take no arguments (as in the official SDK); why the client gave up by
            # itself (retries exhausted, auto-reconnect off) goes to the log.
            reason = n.decode(ev.message)
            if reason:
                _LOGGER.warning("client stopped: %s", reason)
            args = ()
        elif kind is CallbackType.REJOIN_GROUP_FAILED:
            error = send_error(
                "rejoin group",
                int(n.event_field(ev, "result", 0)),
                int(n.event_field(ev, "ack_id", 0) or 0),
                n.decode(ev.message),
                n.decode(ev.error_name),
            )
            args = (OnRejoinGroupFailedArgs(group=n.decode(ev.group) or "", error=error),)
        elif kind is CallbackType.RECOVERING:
            args = (OnRecoveringArgs(connection_id=n.decode(ev.connection_id) or ""),)
        elif kind is CallbackType.RECOVERED:
            args = (OnRecoveredArgs(connection_id=n.decode(ev.connection_id) or ""),)
        elif kind is CallbackType.SESSION_LOST:
            args = (
                OnSessionLostArgs(
                    connection_id=n.decode(ev.connection_id) or "",
                    last_sequence_id=int(ev.sequence_id),
                    message=n.decode(ev.message),
                ),
            )
        else:
            raw = string_at(ev.data, ev.data_len) if ev.data_len else b""
            data_type, data = _payload.decode(raw, ev.data_type)
            args = (OnServerDataMessageArgs(data_type=data_type, data=data, sequence_id=ev.sequence_id or None),)
        self.sink.deliver(kind, args)

    def _on_stream_frame(self, ev: n.wps_event) -> None:
        group = n.decode(ev.group) or ""
        stream_id = n.decode(ev.stream_id) or ""
        key = (group, stream_id)
        end = bool(ev.end_of_stream)
        reader: Any = self.streams.get(key)
        new = reader is None
        if new:
            if not self.listeners.any(CallbackType.GROUP_STREAM):
                return  # nobody reads streams now: the frame is dropped
            reader = self.sink.new_reader(group, stream_id, n.decode(ev.from_user_id))
            if not end:
                self.streams[key] = reader
        elif end:
            del self.streams[key]
        size = ev.data_len
        if size or not end:
            data_type, data = _payload.decode(string_at(ev.data, size) if size else b"", ev.data_type)
            reader.push(StreamFragment(data_type, data, int(ev.stream_sequence_id)))
        if end:
            name = n.decode(ev.error_name)
            error = None
            if name:
                error = GroupStreamError(name, n.decode(ev.message), n.decode(ev.user_error_code))
            reader.finish(error)
        if new:
            self.sink.deliver(CallbackType.GROUP_STREAM, (reader,))

    def _on_group_state(self, ev: n.wps_event) -> None:
        group = n.decode(ev.group) or ""
        is_snapshot = bool(ev.is_snapshot)
        raw = string_at(ev.data, ev.data_len) if ev.data_len else b"[]"
        try:
            records = records_from_json(json.loads(raw.decode("utf-8", "replace")))
        except ValueError:
            _LOGGER.warning("group-state event for %r with malformed data dropped", group)
            return
        with self.state_lock:
            cache = self.state_caches.get(group)
        changed = cache.apply(records, is_snapshot) if cache is not None else False
        if self.listeners.any(CallbackType.GROUP_STATE):
            self.sink.deliver(CallbackType.GROUP_STATE, (OnGroupStateArgs(group, is_snapshot, records, changed),))

    def finish_readers(self, name: str, message: str) -> None:
        """End every open reader (the client was freed before their last frame came)."""
        readers, self.streams = list(self.streams.values()), {}
        for reader in readers:
            reader.finish(GroupStreamError(name, message))

    def on_delivery_thread(self) -> bool:
        """Whether this thread is delivering this client's events now (inside a listener)."""
        return self.delivering_thread == get_ident()

    # -- group state (shared by both clients)

    def state_cache_for_subscribe(self, group: str) -> Tuple[GroupStateCache, bool]:
        """The group's cache, created if new (``True``); an existing one is kept until the
        next snapshot replaces its content."""
        with self.state_lock:
            cache = self.state_caches.get(group)
            if cache is not None:
                return cache, False
            cache = self.state_caches[group] = GroupStateCache()
            return cache, True

    def drop_state_cache(self, group: str) -> None:
        with self.state_lock:
            self.state_caches.pop(group, None)

    def list_group_states(self, group: str) -> List[GroupStateRecord]:
        with self.state_lock:
            cache = self.state_caches.get(group)
        if cache is None:
            raise WebPubSubClientError(f"group state is not subscribed for group {group!r}")
        return cache.list()

    def set_own_state(self, group: str, state: Optional[Dict[str, str]]) -> None:
        with self.state_lock:
            if state is None:
                self.own_states.pop(group, None)
            else:
                self.own_states[group] = dict(state)

    def own_state(self, group: str) -> Optional[Dict[str, str]]:
        with self.state_lock:
            state = self.own_states.get(group)
            return None if state is None else dict(state)

    # -- state

    def is_connected(self) -> bool:
        if self._freed:
            return False
        if self.lib.wps_client_is_connected is None:
            raise WebPubSubClientError("the native library reports no connection state")
        return bool(self.lib.wps_client_is_connected(self.handle))

    def get_stats(self) -> Dict[str, Any]:
        fn = self.lib.wps_client_get_stats
        if fn is None:
            raise WebPubSubClientError("the native library reports no statistics")
        st = n.wps_stats()
        st.struct_size = ctypes.sizeof(n.wps_stats)
        if self._freed:
            raise WebPubSubClientError("the client is closed")
        code = fn(self.handle, ctypes.byref(st))
        if code != n.WPS_OK:
            raise WebPubSubClientError(f"wps_client_get_stats failed: {n.decode(self.lib.wps_last_error_message())}")
        out: Dict[str, Any] = {field[0]: int(getattr(st, field[0])) for field in n.wps_stats._fields_[2:]}
        out["state"] = n.WPS_STATE_NAMES.get(st.state, str(st.state))
        return out

    def connection_id(self) -> Optional[str]:
        if self._freed:
            return None
        fn = self.lib.wps_client_get_connection_id
        if fn is None:
            return self.last_connection_id
        buf = ctypes.create_string_buffer(256)
        needed = ctypes.c_size_t(0)
        code = fn(self.handle, buf, len(buf), ctypes.byref(needed))
        if code != n.WPS_OK and needed.value > len(buf):
            buf = ctypes.create_string_buffer(needed.value + 1)
            code = fn(self.handle, buf, len(buf), ctypes.byref(needed))
        if code != n.WPS_OK:
            return None
        return buf.value.decode("utf-8") or None

    # -- lifetime

    def release(self, stop_timeout_ms: int = 5000) -> None:
        """Stop (bounded) and free the native client; idempotent, safe from any thread."""
        with self._free_lock:
            if self._freed:
                return
            self._freed = True
        try:
            self.lib.wps_client_stop(self.handle, stop_timeout_ms)
        finally:
            self.lib.wps_client_free(self.handle)
            with _REGISTRY_LOCK:
                _REGISTRY.pop(self.key, None)
            self.finish_readers("Stopped", "the client was closed")

    @property
    def freed(self) -> bool:
        return self._freed


def create_core(
    settings: ClientSettings,
    url: Optional[str],
    url_provider: Optional[Callable[[], str]],
    sink: EventSink,
    poll_mode: bool,
) -> ClientCore:
    """A native client for ``settings`` delivering to ``sink``; turns on
    native log forwarding when the settings ask for it."""
    if settings.logging_enable:
        enable_native_logging()
    lib = n.get_lib()
    native_options = build_native_options(settings, poll_mode=poll_mode)
    try:
        core = ClientCore(url, url_provider, native_options, sink)
        core.reader_max_fragments = settings.stream_reader_max_fragments or settings.event_queue_max_messages or 10_000
        core.reader_wait_s = float(settings.stream_reader_wait)
        return core
    finally:
        lib.wps_options_free(native_options)


def _close_all_at_exit() -> None:
    with _REGISTRY_LOCK:
        cores = list(_REGISTRY.values())
    for core in cores:
        try:
            core.release(stop_timeout_ms=2000)
        except BaseException:  # noqa: BLE001
            _LOGGER.exception("error while closing a client at exit")
    disable_native_logging(at_exit=True)


atexit.register(_close_all_at_exit)
