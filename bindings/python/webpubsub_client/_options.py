"""Client option keywords (the official SDK's names and defaults) and their native form."""

import ctypes
import logging
import os
from dataclasses import dataclass, fields
from typing import Any, Dict, Optional, Tuple, Union

from . import _native as n
from .models._enums import RetryMode, WebPubSubProtocolType
from .models._models import WebPubSubClientOptions

_LOGGER = logging.getLogger("webpubsub_client")

_MAX_MS = 0xFFFFFFFF


@dataclass
class ClientSettings:
    """Every option the client constructor accepts, with the official SDK's defaults.

    ``keep_alive_interval`` / ``keep_alive_timeout`` (seconds, ``0`` disables) are additions:
    the library sends ``ping`` frames and treats a silent connection as dead.

    Network additions: ``reconnect_retry_total=None`` retries new connections forever;
    ``reconnect_retry_jitter`` (percent, 0..100, default 0) makes each reconnect delay ``d`` a
    random value in ``[d * (1 - percent/100), d]``; ``url_provider_timeout`` (seconds, default
    10) bounds one call of a URL provider (a late call fails that attempt); ``proxy``
    (``http://``, ``https://``, ``socks5://`` or ``socks5h://`` with optional
    ``user:password@``; ``""`` for none; default: the ``HTTPS_PROXY`` / ``ALL_PROXY`` /
    ``NO_PROXY`` environment); ``ca_file`` (extra PEM roots); ``client_cert`` (a
    ``(cert_pem_file, key_pem_file)`` pair for mutual TLS, checked at construction).

    Group streams: ``stream_buffer_max_bytes`` (unacknowledged bytes per published stream
    before ``write`` waits; library default 1 MiB); ``stream_from_start_only`` (ignore a stream
    first seen mid-way); ``stream_idle_timeout`` (seconds without a frame after which a received
    stream ends with ``IdleTimeout``; library default 300); ``stream_max_streams`` (streams
    received at once; library default 4096, the least recently active one beyond it ends with
    ``TooManyStreams``); ``stream_reader_max_fragments`` (fragments a reader buffers; default
    ``event_queue_max_messages``, 10,000) and ``stream_reader_wait`` (seconds the event thread
    waits for a full reader before it ends with ``ReaderOverflow``; default 30).
    """

    protocol_type: WebPubSubProtocolType = WebPubSubProtocolType.JSON_RELIABLE
    auto_rejoin_groups: bool = True
    message_retry_total: int = 3
    message_retry_backoff_factor: float = 0.8
    message_retry_backoff_max: float = 120.0
    message_retry_mode: RetryMode = RetryMode.Exponential
    reconnect_retry_total: int = 3
    reconnect_retry_backoff_factor: float = 0.8
    reconnect_retry_backoff_max: float = 120.0
    reconnect_retry_mode: RetryMode = RetryMode.Exponential
    ack_timeout: float = 30.0
    start_timeout: float = 30.0
    logging_enable: bool = False
    user_agent: Optional[str] = None
    keep_alive_interval: Optional[float] = None
    keep_alive_timeout: Optional[float] = None
    reconnect_retry_jitter: int = 0
    url_provider_timeout: float = 10.0
    proxy: Optional[str] = None
    ca_file: Optional[str] = None
    client_cert: Optional[Tuple[str, str]] = None
    offline_queue_max_messages: int = 0
    offline_queue_max_bytes: int = 0
    event_queue_max_messages: Optional[int] = None
    event_queue_max_bytes: Optional[int] = None
    stream_buffer_max_bytes: Optional[int] = None
    stream_from_start_only: bool = False
    stream_idle_timeout: Optional[float] = None
    stream_max_streams: Optional[int] = None
    stream_reader_max_fragments: Optional[int] = None
    stream_reader_wait: float = 30.0


_KNOWN = {f.name for f in fields(ClientSettings)}


def _protocol_of(value: Any) -> WebPubSubProtocolType:
    value = getattr(value, "protocol_type", value)
    try:
        return WebPubSubProtocolType(value)
    except ValueError:
        raise ValueError(f"unsupported protocol_type: {value!r}") from None


def _mode_of(value: Any) -> RetryMode:
    try:
        return RetryMode(getattr(value, "value", value))
    except ValueError:
        raise ValueError(f"unsupported retry mode: {value!r}") from None


def settings_from(
    options: Optional[Union[WebPubSubClientOptions, Dict[str, Any]]], kwargs: Dict[str, Any]
) -> ClientSettings:
    """Merge an options object (seed spelling) and keywords into validated settings."""
    merged: Dict[str, Any] = {}
    if options is not None:
        if isinstance(options, WebPubSubClientOptions):
            merged.update(options.as_kwargs())
        elif isinstance(options, dict):
            merged.update(options)
        else:
            raise TypeError("options must be a WebPubSubClientOptions")
    merged.update(kwargs)
    if "auto_restore_groups" in merged:
        merged.setdefault("auto_rejoin_groups", merged.pop("auto_restore_groups"))
    if "protocol" in merged:
        merged.setdefault("protocol_type", merged.pop("protocol"))
    unknown = set(merged) - _KNOWN
    for key in sorted(unknown):
        _LOGGER.debug("ignoring unknown client option %r", key)
        merged.pop(key)
    s = ClientSettings(**merged)
    s.protocol_type = _protocol_of(s.protocol_type)
    s.message_retry_mode = _mode_of(s.message_retry_mode)
    s.reconnect_retry_mode = _mode_of(s.reconnect_retry_mode)
    for name in ("message_retry_total", "reconnect_retry_total"):
        value = getattr(s, name)
        if name == "reconnect_retry_total" and value is None:
            continue  # unlimited
        if int(value) < 0:
            raise ValueError(f"{name} must be >= 0")
    if not 0 <= int(s.reconnect_retry_jitter) <= 100:
        raise ValueError("reconnect_retry_jitter is a percentage (0..100)")
    if float(s.url_provider_timeout) <= 0:
        raise ValueError("url_provider_timeout must be > 0")
    if s.client_cert is not None:
        if not (isinstance(s.client_cert, (tuple, list)) and len(s.client_cert) == 2):
            raise ValueError("client_cert must be a (cert_pem_file, key_pem_file) pair")
        s.client_cert = (str(s.client_cert[0]), str(s.client_cert[1]))
    for name in ("ack_timeout", "start_timeout", "message_retry_backoff_factor", "reconnect_retry_backoff_factor"):
        if float(getattr(s, name)) < 0:
            raise ValueError(f"{name} must be >= 0")
    return s


def seconds_to_ms(value: float) -> int:
    """Seconds as a clamped ``uint32`` millisecond count."""
    return max(0, min(_MAX_MS, int(round(float(value) * 1000))))


def _check(code: int, what: str) -> None:
    if code != n.WPS_OK:
        message, _ = n.last_error()
        raise ValueError(f"{what}: {n.result_name(code)}: {message or n.result_text(code)}")


_PROTOCOLS = {
    WebPubSubProtocolType.JSON_RELIABLE: n.WPS_PROTOCOL_JSON_RELIABLE,
    WebPubSubProtocolType.JSON: n.WPS_PROTOCOL_JSON,
    WebPubSubProtocolType.PROTOBUF_RELIABLE: n.WPS_PROTOCOL_PROTOBUF_RELIABLE,
    WebPubSubProtocolType.PROTOBUF: n.WPS_PROTOCOL_PROTOBUF,
}


def _retry_mode_native(mode: RetryMode) -> int:
    return n.WPS_RETRY_FIXED if mode is RetryMode.Fixed else n.WPS_RETRY_EXPONENTIAL


def build_native_options(s: ClientSettings, poll_mode: bool) -> "ctypes._Pointer":
    """A new ``wps_options*`` for the settings; the caller frees it with ``wps_options_free``."""
    lib = n.get_lib()
    opts = n.OptionsP()
    _check(lib.wps_options_new(ctypes.byref(opts)), "wps_options_new")
    try:
        protocol = _PROTOCOLS[s.protocol_type]
        _check(lib.wps_options_set_protocol(opts, protocol), "protocol_type")
        _check(lib.wps_options_set_auto_rejoin_groups(opts, 1 if s.auto_rejoin_groups else 0), "auto_rejoin_groups")
        _check(lib.wps_options_set_ack_timeout_ms(opts, seconds_to_ms(s.ack_timeout)), "ack_timeout")
        unlimited = s.reconnect_retry_total is None
        reconnect = unlimited or int(s.reconnect_retry_total) > 0
        _check(lib.wps_options_set_auto_reconnect(opts, 1 if reconnect else 0), "reconnect_retry_total")
        if lib.wps_options_set_message_retry is not None:
            _check(
                lib.wps_options_set_message_retry(
                    opts,
                    min(int(s.message_retry_total), _MAX_MS),
                    _retry_mode_native(s.message_retry_mode),
                    seconds_to_ms(s.message_retry_backoff_factor),
                    seconds_to_ms(s.message_retry_backoff_max),
                ),
                "message_retry_*",
            )
        if reconnect and lib.wps_options_set_reconnect_retry is not None:
            _check(
                lib.wps_options_set_reconnect_retry(
                    opts,
                    _MAX_MS if unlimited else min(int(s.reconnect_retry_total), _MAX_MS),
                    _retry_mode_native(s.reconnect_retry_mode),
                    seconds_to_ms(s.reconnect_retry_backoff_factor),
                    seconds_to_ms(s.reconnect_retry_backoff_max),
                ),
                "reconnect_retry_*",
            )
        if (s.keep_alive_interval is not None or s.keep_alive_timeout is not None) and lib.wps_options_set_keep_alive:
            interval = 20.0 if s.keep_alive_interval is None else s.keep_alive_interval
            timeout = 120.0 if s.keep_alive_timeout is None else s.keep_alive_timeout
            _check(
                lib.wps_options_set_keep_alive(opts, seconds_to_ms(interval), seconds_to_ms(timeout)), "keep_alive_*"
            )
        if s.event_queue_max_messages is not None or s.event_queue_max_bytes is not None:
            if lib.wps_options_set_event_queue_limit is None:
                raise ValueError("event_queue_*: the native library has no event queue limit")
            messages = 10_000 if s.event_queue_max_messages is None else int(s.event_queue_max_messages)
            limit_bytes = 32 * 1024 * 1024 if s.event_queue_max_bytes is None else int(s.event_queue_max_bytes)
            if messages < 0 or limit_bytes < 0:
                raise ValueError("event_queue_*: limits must not be negative")
            _check(lib.wps_options_set_event_queue_limit(opts, messages, limit_bytes), "event_queue_*")
        if int(s.offline_queue_max_messages) > 0:
            if lib.wps_options_set_offline_queue is None:
                raise ValueError("offline_queue_*: the native library has no offline queue")
            if int(s.offline_queue_max_messages) < 0 or int(s.offline_queue_max_bytes) < 0:
                raise ValueError("offline_queue_*: limits must not be negative")
            _check(
                lib.wps_options_set_offline_queue(
                    opts, int(s.offline_queue_max_messages), int(s.offline_queue_max_bytes)
                ),
                "offline_queue_*",
            )
        _set_stream_options(lib, opts, s)
        if s.user_agent and lib.wps_options_set_user_agent is not None:
            _check(lib.wps_options_set_user_agent(opts, str(s.user_agent).encode("utf-8")), "user_agent")
        _set_network_options(lib, opts, s)
        if poll_mode:
            if lib.wps_options_set_dispatch_mode is None:
                raise RuntimeError("the native library has no poll dispatch mode (wps_options_set_dispatch_mode)")
            _check(lib.wps_options_set_dispatch_mode(opts, n.WPS_DISPATCH_POLL), "dispatch mode")
    except BaseException:
        lib.wps_options_free(opts)
        raise
    return opts


def _needs(lib: Any, name: str, option: str) -> Any:
    fn = getattr(lib, name)
    if fn is None:
        raise RuntimeError(f"the native library is too old for {option} ({name} is missing)")
    return fn


def _set_stream_options(lib: Any, opts: Any, s: ClientSettings) -> None:
    """Stream buffer and receive options (only when set)."""
    if s.stream_buffer_max_bytes is not None:
        if int(s.stream_buffer_max_bytes) <= 0:
            raise ValueError("stream_buffer_max_bytes must be > 0")
        fn = _needs(lib, "wps_options_set_stream_buffer", "stream_buffer_max_bytes")
        _check(fn(opts, int(s.stream_buffer_max_bytes)), "stream_buffer_max_bytes")
    if s.stream_from_start_only or s.stream_idle_timeout is not None or s.stream_max_streams is not None:
        idle = 0 if s.stream_idle_timeout is None else max(1, seconds_to_ms(s.stream_idle_timeout))
        streams = 0 if s.stream_max_streams is None else int(s.stream_max_streams)
        if streams < 0:
            raise ValueError("stream_max_streams must be >= 0")
        fn = _needs(lib, "wps_options_set_stream_receive", "stream_* receive options")
        flags = n.WPS_STREAM_FROM_START_ONLY if s.stream_from_start_only else 0
        _check(fn(opts, flags, idle, streams), "stream_* receive options")
    if s.stream_reader_max_fragments is not None and int(s.stream_reader_max_fragments) <= 0:
        raise ValueError("stream_reader_max_fragments must be > 0")
    if float(s.stream_reader_wait) < 0:
        raise ValueError("stream_reader_wait must be >= 0")


def _set_network_options(lib: Any, opts: Any, s: ClientSettings) -> None:
    """Jitter, provider timeout, proxy, CA file and client certificate (only when set, so an
    older native library works without them)."""
    if s.reconnect_retry_jitter:
        fn = _needs(lib, "wps_options_set_reconnect_jitter", "reconnect_retry_jitter")
        _check(fn(opts, int(s.reconnect_retry_jitter)), "reconnect_retry_jitter")
    if float(s.url_provider_timeout) != 10.0:
        fn = _needs(lib, "wps_options_set_url_provider_timeout_ms", "url_provider_timeout")
        _check(fn(opts, max(1, seconds_to_ms(s.url_provider_timeout))), "url_provider_timeout")
    if s.proxy is not None:
        _check(_needs(lib, "wps_options_set_proxy", "proxy")(opts, str(s.proxy).encode("utf-8")), "proxy")
    if s.ca_file is not None:
        fn = _needs(lib, "wps_options_set_ca_file", "ca_file")
        _check(fn(opts, os.fsencode(s.ca_file)), "ca_file")
    if s.client_cert is not None:
        fn = _needs(lib, "wps_options_set_client_cert", "client_cert")
        cert, key = s.client_cert
        _check(fn(opts, os.fsencode(cert), os.fsencode(key)), "client_cert")
