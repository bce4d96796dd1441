"""The synchronous client: ``webpubsub_client.WebPubSubClient``.

Same public API as ``azure.messaging.webpubsubclient.WebPubSubClient`` 1.1.0. Events of one
client are delivered by the native library in order, one at a time, on its callback threads;
every method may be called from inside a listener (also the blocking ones).
"""

import ctypes
import logging
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from . import _native as n
from ._core import ClientCore, Completion, create_core, open_error, send_error
from ._operations import client_settings, group_op, send_op, state_json
from ._streams import GroupStreamReader, GroupStreamWriter, open_native_stream, timeout_ms
from ._options import seconds_to_ms
from .models._enums import CallbackType, RetryMode, WebPubSubDataType, WebPubSubProtocolType
from .models._errors import OpenClientError
from .models._models import GroupStateRecord, WebPubSubClientOptions

_LOGGER = logging.getLogger("webpubsub_client")

_STOP_TIMEOUT_MS = 30000


class WebPubSubClientCredential:
    """Where the client gets its client access URL.

    :param client_access_url_provider: A URL, or a callable returning a fresh URL. The callable
        is called for every new connection (open and reconnect), not for recovery, so a
        token that expired meanwhile is replaced.
    """

    def __init__(self, client_access_url_provider: Union[str, Callable[[], str]]) -> None:
        if isinstance(client_access_url_provider, str):
            url = client_access_url_provider
            self._provider: Callable[[], str] = lambda: url
            self._fixed_url: Optional[str] = url
        elif callable(client_access_url_provider):
            self._provider = client_access_url_provider
            self._fixed_url = None
        else:
            raise TypeError("client_access_url_provider must be a str or a callable returning a str")

    def get_client_access_url(self) -> str:
        """Return a client access URL (calls the provider)."""
        return self._provider()


def _split_credential(
    credential: Union[WebPubSubClientCredential, str],
) -> Tuple[Optional[str], Optional[Callable[[], str]]]:
    if isinstance(credential, str):
        return credential, None
    if isinstance(credential, WebPubSubClientCredential):
        if credential._fixed_url is not None:
            return credential._fixed_url, None
        return None, credential.get_client_access_url
    raise TypeError("type of credential must be str or WebPubSubClientCredential")


class _ListenerSink:
    """Runs listeners on the library's callback thread for this client (ordered, one at a time)."""

    def __init__(self) -> None:
        self.core: Optional[ClientCore] = None

    def deliver(self, kind: CallbackType, args: Tuple[Any, ...]) -> None:
        core = self.core
        if core is None:
            return
        for listener in core.listeners.snapshot(kind):
            try:
                listener(*args)
            except Exception:  # noqa: BLE001 - a listener's error must not stop the others
                _LOGGER.exception("listener for %r raised", kind.value)

    def complete(self, op_key: int, completion: Completion) -> None:
        """The sync client uses no asynchronous operations."""

    def new_reader(self, group: str, stream_id: str, from_user_id: Optional[str]) -> GroupStreamReader:
        core = self.core
        assert core is not None
        return GroupStreamReader(
            group, stream_id, from_user_id, core.reader_max_fragments, core.reader_wait_s, core.on_delivery_thread
        )


class WebPubSubClient:
    """A client connection to Azure Web PubSub (or a compatible service).

    :param credential: A client access URL (``wss://.../client/hubs/<hub>?access_token=...``) or a
        :class:`WebPubSubClientCredential`.
    :param options: Optional :class:`~webpubsub_client.models.WebPubSubClientOptions` (seed README
        spelling); keywords override it.
    :keyword protocol_type: :class:`WebPubSubProtocolType` (default ``JSON_RELIABLE``).
    :keyword auto_rejoin_groups: Rejoin joined groups after a reconnect (default ``True``).
    :keyword message_retry_total: Retries of a failed operation (default 3).
    :keyword message_retry_backoff_factor: First retry delay in seconds (default 0.8).
    :keyword message_retry_backoff_max: Largest retry delay in seconds (default 120).
    :keyword message_retry_mode: :class:`RetryMode` (default ``Exponential``).
    :keyword reconnect_retry_total: Reconnect attempts; ``0`` disables auto-reconnect (default 3).
    :keyword reconnect_retry_backoff_factor: First reconnect delay in seconds (default 0.8).
    :keyword reconnect_retry_backoff_max: Largest reconnect delay in seconds (default 120).
    :keyword reconnect_retry_mode: :class:`RetryMode` (default ``Exponential``).
    :keyword ack_timeout: Seconds to wait for an operation's ack (default 30).
    :keyword start_timeout: Seconds ``open()`` waits for the connection (default 30).
    :keyword keep_alive_interval: Seconds between keep-alive pings (library default 20; ``0`` off).
    :keyword keep_alive_timeout: Seconds of silence after which the connection counts as dead
        (library default 120).
    :keyword logging_enable: Forward the native library's log lines to the ``webpubsub_client.native``
        logger (process-wide, once enabled).
    :keyword user_agent: Application name and version sent in front of the library's own
        ``User-Agent`` (``webpubsub-client/<version> (<os>; <arch>)``), e.g. ``"gateway/2.1"``.
    :keyword offline_queue_max_messages: Turn on the offline queue: sends, events, joins and
        leaves made while not connected (before ``open()``, while recovering or reconnecting) wait
        in order, up to this many, and go out once connected (default 0: off, such calls fail).
    :keyword offline_queue_max_bytes: Payload bytes the offline queue may hold (default 0: no
        byte limit). A call that finds the queue full waits up to ``ack_timeout`` for room.
    :keyword event_queue_max_messages: Received messages not yet handled by listeners that may
        wait (library default 10,000); at the bound the client stops reading its socket.
    :keyword event_queue_max_bytes: The same bound in payload bytes (library default 32 MiB).
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
        url, provider = _split_credential(credential)
        sink = _ListenerSink()
        self._core = create_core(self._settings, url, provider, sink, poll_mode=False)
        sink.core = self._core
        self._finalizer = weakref.finalize(self, self._core.release)

    # -- lifetime

    def open(self) -> None:
        """Connect to the service; returns once connected.

        :raises OpenClientError: the client is already open, the service could not be reached,
            or ``start_timeout`` passed.
        """
        core = self._core
        if core.freed:
            raise OpenClientError("the client has been disposed")
        code = core.lib.wps_client_start(core.handle, seconds_to_ms(self._settings.start_timeout))
        if code != n.WPS_OK:
            message, _ = n.last_error()
            raise open_error(code, message)

    def close(self) -> None:
        """Stop the client; a no-op when it is not open. ``stopped`` is the last event."""
        core = self._core
        if core.freed:
            return
        code = core.lib.wps_client_stop(core.handle, _STOP_TIMEOUT_MS)
        if code != n.WPS_OK:
            message, _ = n.last_error()
            _LOGGER.debug("close: %s: %s", n.result_name(code), message)

    def __enter__(self) -> "WebPubSubClient":
        self.open()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.close()

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

    def subscribe(self, event: Union[CallbackType, str], listener: Callable[..., Any], **kwargs: Any) -> None:
        """Add ``listener`` for ``event`` (a :class:`CallbackType` or its string value).

        Listeners of ``stopped`` take no argument; the others take the event's args object.
        Registrations survive reconnects and close/open.
        """
        self._core.listeners.add(event, listener)

    def unsubscribe(self, event: Union[CallbackType, str], listener: Callable[..., Any], **kwargs: Any) -> None:
        """Remove ``listener`` from ``event``."""
        self._core.listeners.remove(event, listener)

    on = subscribe
    off = unsubscribe

    # -- operations

    def _raise_on_failure(self, code: int, what: str, out_ack: ctypes.c_uint64) -> None:
        if code != n.WPS_OK:
            message, error_name = n.last_error()
            raise send_error(what, code, out_ack.value, message, error_name)

    def join_group(self, group_name: str, options: Any = None, *, ack_id: Optional[int] = None, **kwargs: Any) -> None:
        """Join ``group_name``; returns once the service acked it.

        :keyword ack_id: Retry an earlier attempt with its ack id (the service deduplicates).
        :raises SendMessageError: carrying the ack id and the error detail.
        """
        op = group_op(group_name, options, ack_id)
        out = ctypes.c_uint64(0)
        code = self._core.lib.wps_join_group(self._core.handle, op.group, op.ack_id, ctypes.byref(out))
        self._raise_on_failure(code, f"join group {group_name!r}", out)

    def leave_group(self, group_name: str, options: Any = None, *, ack_id: Optional[int] = None, **kwargs: Any) -> None:
        """Leave ``group_name``; returns once the service acked it.

        :keyword ack_id: Retry an earlier attempt with its ack id.
        :raises SendMessageError: carrying the ack id and the error detail.
        """
        op = group_op(group_name, options, ack_id)
        out = ctypes.c_uint64(0)
        code = self._core.lib.wps_leave_group(self._core.handle, op.group, op.ack_id, ctypes.byref(out))
        self._raise_on_failure(code, f"leave group {group_name!r}", out)

    def send_to_group(
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
        """Send ``content`` to ``group_name``.

        :param data_type: ``text`` (``str``), ``json`` (a JSON value), ``binary``/``protobuf``
            (``memoryview``/``bytes``).
        :keyword ack: ``False`` sends without an ack id and returns once queued for writing
            (same as ``fire_and_forget=True``).
        :keyword no_echo: Do not deliver the message back to this connection.
        :keyword ack_id: Retry an earlier attempt with its ack id.
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
        out = ctypes.c_uint64(0)
        code = self._core.lib.wps_send_to_group(self._core.handle, *op, ctypes.byref(out))
        self._raise_on_failure(code, f"send to group {group_name!r}", out)

    def send_event(
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

        :keyword ack: ``False`` sends without an ack id (same as ``fire_and_forget=True``).
        :keyword ack_id: Retry an earlier attempt with its ack id.
        :raises SendMessageError: carrying the ack id and the error detail (e.g. ``InternalServerError``
            when the hub has no event handler).
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
        out = ctypes.c_uint64(0)
        code = self._core.lib.wps_send_event(self._core.handle, *op, ctypes.byref(out))
        self._raise_on_failure(code, f"send event {event_name!r}", out)

    # -- group streams (beyond the official Python SDK)

    def open_group_stream(
        self,
        group_name: str,
        stream_id: Optional[str] = None,
        *,
        no_echo: bool = False,
        idle_timeout_ms: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> GroupStreamWriter:
        """Open a stream to ``group_name``; returns once the service accepted it.

        :param stream_id: The stream's id (default: a new UUID).
        :keyword no_echo: Do not deliver the stream back to this connection.
        :keyword idle_timeout_ms: The idle timeout asked of the service (default: its own,
            300000 ms). The client sends keep-alive frames while the stream is idle, so the
            stream stays open as long as the writer does.
        :keyword timeout: Seconds to wait for the service (default: ``ack_timeout``).
        :raises SendMessageError: the service refused (``error_detail.name``, e.g. ``Forbidden``),
            timeout, not connected.
        """
        handle = open_native_stream(self._core, group_name, stream_id, no_echo, idle_timeout_ms, timeout_ms(timeout))
        return GroupStreamWriter(self._core, handle, group_name)

    def on_group_stream(self, listener: Callable[[GroupStreamReader], Any]) -> None:
        """Call ``listener`` with a :class:`GroupStreamReader` for every new incoming group
        stream (same as ``subscribe("group-stream", listener)``). The listener runs on the
        client's event thread: hand the reader to a thread of your own to iterate it.
        Streams that start while no such listener is registered are not delivered."""
        self._core.listeners.add(CallbackType.GROUP_STREAM, listener)

    # -- group state (beyond the official Python SDK)

    def _group_state_call(self, fn: Any, what: str, group_name: str, *args: Any, ack_id: Optional[int]) -> None:
        if fn is None:
            raise RuntimeError("the native library has no group state")
        op = group_op(group_name, None, ack_id)
        out = ctypes.c_uint64(0)
        code = fn(self._core.handle, op.group, *args, op.ack_id, ctypes.byref(out))
        self._raise_on_failure(code, f"{what} {group_name!r}", out)

    def set_group_state(self, group_name: str, state: Dict[str, str], *, ack_id: Optional[int] = None) -> None:
        """Set this connection's state in ``group_name`` (joined before) to ``state``, a
        ``dict`` of ``str`` to ``str``; returns once the service acked it.

        :raises SendMessageError: e.g. ``BadRequest`` when the connection is not in the group.
        """
        raw = state_json(state)
        lib = self._core.lib
        self._group_state_call(lib.wps_set_group_state, "set group state", group_name, raw, ack_id=ack_id)
        self._core.set_own_state(group_name, state)

    def clear_group_state(self, group_name: str, *, ack_id: Optional[int] = None) -> None:
        """Clear this connection's state in ``group_name``; returns once the service acked it."""
        lib = self._core.lib
        self._group_state_call(lib.wps_set_group_state, "clear group state", group_name, None, ack_id=ack_id)
        self._core.set_own_state(group_name, None)

    def get_group_state(self, group_name: str) -> Optional[Dict[str, str]]:
        """This connection's own state in ``group_name`` as last set (a copy), or ``None``.
        A new connection starts without state."""
        return self._core.own_state(group_name)

    def subscribe_group_state(self, group_name: str, *, ack_id: Optional[int] = None) -> None:
        """Subscribe to ``group_name``'s state; returns once the service acked it. A snapshot
        follows, then updates (``group-state`` events), and :meth:`list_group_states` shows
        the merged view. The subscription is renewed on every new connection."""
        core = self._core
        _, created = core.state_cache_for_subscribe(group_name)
        try:
            self._group_state_call(
                core.lib.wps_subscribe_group_state, "subscribe group state", group_name, ack_id=ack_id
            )
        except BaseException:
            if created:
                core.drop_state_cache(group_name)
            raise

    def unsubscribe_group_state(self, group_name: str, *, ack_id: Optional[int] = None) -> None:
        """End the subscription to ``group_name``'s state and drop its cached view."""
        core = self._core
        self._group_state_call(
            core.lib.wps_unsubscribe_group_state, "unsubscribe group state", group_name, ack_id=ack_id
        )
        core.drop_state_cache(group_name)

    def list_group_states(self, group_name: str) -> List[GroupStateRecord]:
        """Copies of the cached records of ``group_name`` that have a state (empty until the
        first snapshot).

        :raises WebPubSubClientError: the group's state is not subscribed.
        """
        return self._core.list_group_states(group_name)


__all__ = ["WebPubSubClient", "WebPubSubClientCredential"]
