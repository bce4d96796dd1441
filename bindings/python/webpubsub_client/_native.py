"""ctypes declarations of the C ABI (``include/webpubsub_client.h``).

Every function used has its ``argtypes`` and ``restype`` declared. Functions that are not part
of the pinned core are optional: when the loaded library lacks one, the attribute on
:data:`lib` is ``None`` and the caller reports a clear error.
"""

import ctypes
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_int32,
    c_size_t,
    c_uint32,
    c_uint64,
    c_uint8,
    c_void_p,
)
from typing import Any, Dict, Optional, Tuple

from ._loader import load_library

# --- constants (mirrors of the header's values; tests/test_header.py checks them) --------

WPS_OK = 0

WPS_ERR_BUFFER_TOO_SMALL = 105
WPS_ERR_URL_PROVIDER = 303
WPS_ERR_TIMEOUT = 200
WPS_ERR_STREAM_CLOSED = 204

WPS_LOG_OFF = 0
WPS_LOG_ERROR = 1
WPS_LOG_WARNING = 2
WPS_LOG_INFO = 3
WPS_LOG_VERBOSE = 4

WPS_PROTOCOL_JSON_RELIABLE = 1
WPS_PROTOCOL_JSON = 2
WPS_PROTOCOL_PROTOBUF_RELIABLE = 3
WPS_PROTOCOL_PROTOBUF = 4

WPS_DATA_TEXT = 1
WPS_DATA_JSON = 2
WPS_DATA_BINARY = 3
WPS_DATA_PROTOBUF = 4

WPS_SEND_NO_ECHO = 0x1
WPS_SEND_FIRE_AND_FORGET = 0x2

WPS_EVENT_CONNECTED = 1
WPS_EVENT_DISCONNECTED = 2
WPS_EVENT_STOPPED = 3
WPS_EVENT_SERVER_MESSAGE = 4
WPS_EVENT_GROUP_MESSAGE = 5
WPS_EVENT_REJOIN_GROUP_FAILED = 6
WPS_EVENT_ACK = 7
WPS_EVENT_RECOVERING = 8
WPS_EVENT_RECOVERED = 9
WPS_EVENT_SESSION_LOST = 10
WPS_EVENT_STREAM = 11
WPS_EVENT_GROUP_STATE = 12

WPS_OP_SET_GROUP_STATE = 8
WPS_OP_SUBSCRIBE_GROUP_STATE = 9
WPS_OP_UNSUBSCRIBE_GROUP_STATE = 10

WPS_STREAM_FROM_START_ONLY = 1

WPS_DISPATCH_THREAD = 1
WPS_DISPATCH_POLL = 2

WPS_RETRY_FIXED = 1
WPS_RETRY_EXPONENTIAL = 2

# --- types ------------------------------------------------------------------------------


class wps_client(Structure):
    """Opaque client handle."""


class wps_options(Structure):
    """Opaque options builder."""


class wps_stream(Structure):
    """Opaque group stream handle."""


class wps_event(Structure):
    """The event passed to callbacks; borrowed until the callback returns.

    The first twelve fields are pinned; the rest were appended later and are read only when
    ``struct_size`` shows the library filled them in (see :func:`event_field`).
    """

    _fields_ = [
        ("struct_size", c_uint32),
        ("type", c_uint32),
        ("connection_id", c_char_p),
        ("user_id", c_char_p),
        ("group", c_char_p),
        ("from_user_id", c_char_p),
        ("data_type", c_uint32),
        ("data", POINTER(c_uint8)),
        ("data_len", c_size_t),
        ("sequence_id", c_uint64),
        ("message", c_char_p),
        ("error_name", c_char_p),
        # appended fields (operation completions)
        ("ack_id", c_uint64),
        ("op_context", c_void_p),
        ("result", c_int32),
        ("op", c_uint32),
        ("is_duplicate", c_uint32),
        # appended fields (group streams and group state)
        ("stream_id", c_char_p),
        ("stream_sequence_id", c_uint64),
        ("end_of_stream", c_uint32),
        ("user_error_code", c_char_p),
        ("is_snapshot", c_uint32),
    ]


class wps_stats(Structure):
    """A snapshot of a client's counters (``wps_client_get_stats``)."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("state", c_uint32),
        ("messages_sent", c_uint64),
        ("messages_received", c_uint64),
        ("bytes_sent", c_uint64),
        ("bytes_received", c_uint64),
        ("acks_ok", c_uint64),
        ("acks_failed", c_uint64),
        ("retries", c_uint64),
        ("duplicates", c_uint64),
        ("connects", c_uint64),
        ("recoveries", c_uint64),
        ("session_losses", c_uint64),
        ("queued_messages", c_uint64),
        ("queued_bytes", c_uint64),
        ("inflight_acks", c_uint64),
        ("last_ping_rtt_us", c_uint64),
    ]


WPS_STATE_NAMES = {1: "stopped", 2: "connecting", 3: "connected", 4: "recovering", 5: "reconnecting", 6: "stopping"}


def event_field(ev: wps_event, name: str, default: Any = None) -> Any:
    """Read an appended field of ``ev`` if the library's ``struct_size`` covers it."""
    field = getattr(wps_event, name)
    if ev.struct_size < field.offset + field.size:
        return default
    return getattr(ev, name)


# The event arrives as a plain address (``wps_event.from_address``): one object fewer per event
# than a ``POINTER(wps_event)`` argument.
EVENT_FN = CFUNCTYPE(None, c_void_p, c_void_p)
NO_COMPLETION = EVENT_FN()  # NULL: completions go to the callback registered for WPS_EVENT_ACK
URL_PROVIDER_FN = CFUNCTYPE(c_int32, c_void_p, POINTER(ctypes.c_char), c_size_t, POINTER(c_size_t))
LOG_FN = CFUNCTYPE(None, c_void_p, c_uint32, c_char_p)
NO_LOG = LOG_FN()  # NULL log callback

ClientP = POINTER(wps_client)
OptionsP = POINTER(wps_options)
StreamP = POINTER(wps_stream)

# name -> (restype, argtypes, required)
_SIGNATURES: Dict[str, Tuple[Any, list, bool]] = {
    # results and errors
    "wps_result_str": (c_char_p, [c_int32], True),
    "wps_result_name": (c_char_p, [c_int32], True),
    "wps_result_is_retryable": (c_bool, [c_int32], True),
    "wps_last_error_message": (c_char_p, [], True),
    "wps_last_error_name": (c_char_p, [], True),
    # version and logging
    "wps_set_log_callback": (c_int32, [LOG_FN, c_void_p, c_uint32], False),
    "wps_version_number": (c_uint32, [], True),
    "wps_version_string": (c_char_p, [], True),
    # options
    "wps_options_new": (c_int32, [POINTER(OptionsP)], True),
    "wps_options_free": (None, [OptionsP], True),
    "wps_options_set_protocol": (c_int32, [OptionsP, c_uint32], True),
    "wps_options_set_auto_reconnect": (c_int32, [OptionsP, c_uint32], True),
    "wps_options_set_auto_rejoin_groups": (c_int32, [OptionsP, c_uint32], True),
    "wps_options_set_ack_timeout_ms": (c_int32, [OptionsP, c_uint32], True),
    "wps_options_set_message_retry": (c_int32, [OptionsP, c_uint32, c_uint32, c_uint32, c_uint32], False),
    "wps_options_set_reconnect_retry": (c_int32, [OptionsP, c_uint32, c_uint32, c_uint32, c_uint32], False),
    "wps_options_set_keep_alive": (c_int32, [OptionsP, c_uint32, c_uint32], False),
    "wps_options_set_dispatch_mode": (c_int32, [OptionsP, c_uint32], False),
    "wps_options_set_user_agent": (c_int32, [OptionsP, c_char_p], False),
    "wps_options_set_proxy": (c_int32, [OptionsP, c_char_p], False),
    "wps_options_set_ca_file": (c_int32, [OptionsP, c_char_p], False),
    "wps_options_set_client_cert": (c_int32, [OptionsP, c_char_p, c_char_p], False),
    "wps_options_set_reconnect_jitter": (c_int32, [OptionsP, c_uint32], False),
    "wps_options_set_url_provider_timeout_ms": (c_int32, [OptionsP, c_uint32], False),
    # client
    "wps_client_new": (c_int32, [c_char_p, OptionsP, POINTER(ClientP)], True),
    "wps_client_new_with_provider": (c_int32, [URL_PROVIDER_FN, c_void_p, OptionsP, POINTER(ClientP)], True),
    "wps_client_start": (c_int32, [ClientP, c_uint32], True),
    "wps_client_stop": (c_int32, [ClientP, c_uint32], True),
    "wps_client_free": (None, [ClientP], True),
    "wps_set_callback": (c_int32, [ClientP, c_uint32, EVENT_FN, c_void_p], True),
    "wps_client_is_connected": (c_bool, [ClientP], False),
    "wps_client_get_stats": (c_int32, [ClientP, POINTER(wps_stats)], False),
    "wps_options_set_offline_queue": (c_int32, [OptionsP, c_size_t, c_size_t], False),
    "wps_options_set_event_queue_limit": (c_int32, [OptionsP, c_size_t, c_size_t], False),
    "wps_client_get_connection_id": (c_int32, [ClientP, c_char_p, c_size_t, POINTER(c_size_t)], False),
    # operations
    "wps_join_group": (c_int32, [ClientP, c_char_p, c_uint64, POINTER(c_uint64)], True),
    "wps_leave_group": (c_int32, [ClientP, c_char_p, c_uint64, POINTER(c_uint64)], True),
    "wps_send_to_group": (
        c_int32,
        [ClientP, c_char_p, c_char_p, c_size_t, c_uint32, c_uint32, c_uint64, POINTER(c_uint64)],
        True,
    ),
    "wps_send_event": (
        c_int32,
        [ClientP, c_char_p, c_char_p, c_size_t, c_uint32, c_uint32, c_uint64, POINTER(c_uint64)],
        True,
    ),
    # asynchronous twins (completion: WPS_EVENT_ACK carrying op_context)
    "wps_client_start_async": (c_int32, [ClientP, c_uint32, EVENT_FN, c_void_p], False),
    "wps_client_stop_async": (c_int32, [ClientP, EVENT_FN, c_void_p], False),
    "wps_join_group_async": (c_int32, [ClientP, c_char_p, c_uint64, EVENT_FN, c_void_p, POINTER(c_uint64)], False),
    "wps_leave_group_async": (c_int32, [ClientP, c_char_p, c_uint64, EVENT_FN, c_void_p, POINTER(c_uint64)], False),
    "wps_send_to_group_async": (
        c_int32,
        [ClientP, c_char_p, c_char_p, c_size_t, c_uint32, c_uint32, c_uint64, EVENT_FN, c_void_p, POINTER(c_uint64)],
        False,
    ),
    "wps_send_event_async": (
        c_int32,
        [ClientP, c_char_p, c_char_p, c_size_t, c_uint32, c_uint32, c_uint64, EVENT_FN, c_void_p, POINTER(c_uint64)],
        False,
    ),
    # group streams
    "wps_options_set_stream_buffer": (c_int32, [OptionsP, c_size_t], False),
    "wps_options_set_stream_receive": (c_int32, [OptionsP, c_uint32, c_uint32, c_size_t], False),
    "wps_stream_open": (
        c_int32,
        [ClientP, c_char_p, c_char_p, c_uint32, c_uint32, c_uint32, POINTER(StreamP)],
        False,
    ),
    "wps_stream_write": (c_int32, [StreamP, c_char_p, c_size_t, c_uint32, c_uint32], False),
    "wps_stream_end": (c_int32, [StreamP, c_uint32], False),
    "wps_stream_abort": (c_int32, [StreamP, c_char_p, c_char_p, c_uint32], False),
    "wps_stream_free": (None, [StreamP], False),
    "wps_stream_get_id": (c_char_p, [StreamP], False),
    # group state
    "wps_set_group_state": (c_int32, [ClientP, c_char_p, c_char_p, c_uint64, POINTER(c_uint64)], False),
    "wps_subscribe_group_state": (c_int32, [ClientP, c_char_p, c_uint64, POINTER(c_uint64)], False),
    "wps_unsubscribe_group_state": (c_int32, [ClientP, c_char_p, c_uint64, POINTER(c_uint64)], False),
    "wps_set_group_state_async": (
        c_int32,
        [ClientP, c_char_p, c_char_p, c_uint64, EVENT_FN, c_void_p, POINTER(c_uint64)],
        False,
    ),
    "wps_subscribe_group_state_async": (
        c_int32,
        [ClientP, c_char_p, c_uint64, EVENT_FN, c_void_p, POINTER(c_uint64)],
        False,
    ),
    "wps_unsubscribe_group_state_async": (
        c_int32,
        [ClientP, c_char_p, c_uint64, EVENT_FN, c_void_p, POINTER(c_uint64)],
        False,
    ),
    # poll mode
    "wps_client_get_fd": (c_int, [ClientP], False),
    "wps_client_dispatch": (c_int32, [ClientP, c_uint32, c_uint32, POINTER(c_uint32)], False),
}


# Functions that never block (they queue work or read state and return at once) are called
# without releasing the GIL: releasing and re-taking it costs more than the call itself, and a
# thread that takes the GIL meanwhile (a listener on a library callback thread) would keep the
# caller waiting. ``wps_client_dispatch`` is only ever called with a zero timeout by this
# package; the callbacks it runs re-enter Python on the same thread.
_KEEP_GIL = frozenset(
    {
        "wps_result_str",
        "wps_result_name",
        "wps_result_is_retryable",
        "wps_last_error_message",
        "wps_last_error_name",
        "wps_version_number",
        "wps_version_string",
        "wps_client_is_connected",
        "wps_client_get_connection_id",
        "wps_client_get_stats",
        "wps_join_group_async",
        "wps_leave_group_async",
        "wps_send_to_group_async",
        "wps_send_event_async",
        "wps_set_group_state_async",
        "wps_subscribe_group_state_async",
        "wps_unsubscribe_group_state_async",
        "wps_stream_get_id",
        "wps_client_get_fd",
        "wps_client_dispatch",
    }
)


class _Lib:
    """The loaded library with every declared function as an attribute (``None`` if absent)."""

    def __init__(self) -> None:
        self.dll = load_library()
        # The same loaded library seen through a handle whose calls keep the GIL (see _KEEP_GIL).
        self.pydll = ctypes.PyDLL(self.dll._name, handle=self.dll._handle)
        self.missing = []
        for name, (restype, argtypes, required) in _SIGNATURES.items():
            fn: Any
            try:
                fn = getattr(self.pydll if name in _KEEP_GIL else self.dll, name)
            except AttributeError:
                if required:
                    raise OSError(f"{self.dll._name} lacks the required symbol {name}") from None
                self.missing.append(name)
                fn = None
            else:
                fn.restype = restype
                fn.argtypes = argtypes
            setattr(self, name, fn)

    def __getattr__(self, name: str) -> Any:
        """Only reached for names that were never declared (for type checkers: any ``wps_*``)."""
        raise AttributeError(name)

    def has(self, *names: str) -> bool:
        """Whether every named function exists in the loaded library."""
        return all(getattr(self, n, None) is not None for n in names)


_lib: Optional[_Lib] = None


def get_lib() -> _Lib:
    """Load the native library on first use and return its declarations."""
    global _lib
    if _lib is None:
        _lib = _Lib()
    return _lib


def decode(value: Optional[bytes]) -> Optional[str]:
    """A borrowed C string as ``str`` (copied), ``None`` for NULL."""
    if value is None:
        return None
    return value.decode("utf-8", errors="replace")


def encode_identifier(value: str, what: str) -> bytes:
    """Encode a group/event name for a ``const char *`` argument."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    raw = value.encode("utf-8")
    if b"\0" in raw:
        raise ValueError(f"{what} must not contain NUL characters")
    return raw


def version_string() -> str:
    """The native library's version (``wps_version_string``)."""
    return decode(get_lib().wps_version_string()) or ""


def last_error() -> Tuple[str, Optional[str]]:
    """This thread's last error message and service error name (read right after a failure)."""
    lib = get_lib()
    return decode(lib.wps_last_error_message()) or "", decode(lib.wps_last_error_name())


def result_name(code: int) -> str:
    """The symbolic name of a ``wps_result`` (``WPS_ERR_TIMEOUT``)."""
    return decode(get_lib().wps_result_name(code)) or str(code)


def result_text(code: int) -> str:
    """The description of a ``wps_result``."""
    return decode(get_lib().wps_result_str(code)) or str(code)
