"""Enumerations of the public API (same names and values as the official SDK)."""

from enum import Enum


class _CaseInsensitiveStrEnum(str, Enum):
    """A ``str`` enum whose members also compare equal to their string value."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def _missing_(cls, value: object):  # type: ignore[override]
        if isinstance(value, str):
            for member in cls:
                if member.value == value.lower() or member.name.upper() == value.upper():
                    return member
        return None


class WebPubSubDataType(_CaseInsensitiveStrEnum):
    """Data type of a message payload."""

    BINARY = "binary"
    JSON = "json"
    TEXT = "text"
    PROTOBUF = "protobuf"


class WebPubSubProtocolType(_CaseInsensitiveStrEnum):
    """WebSocket subprotocol spoken with the service.

    ``PROTOBUF`` and ``PROTOBUF_RELIABLE`` are additions (the official Python client has only the
    two JSON subprotocols).
    """

    JSON = "json.webpubsub.azure.v1"
    JSON_RELIABLE = "json.reliable.webpubsub.azure.v1"
    PROTOBUF = "protobuf.webpubsub.azure.v1"
    PROTOBUF_RELIABLE = "protobuf.reliable.webpubsub.azure.v1"


class CallbackType(_CaseInsensitiveStrEnum):
    """Names of the client events a listener can subscribe to."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"
    SERVER_MESSAGE = "server-message"
    GROUP_MESSAGE = "group-message"
    REJOIN_GROUP_FAILED = "rejoin-group-failed"
    # Beyond the official SDK: the recovery and session-lost signals.
    RECOVERING = "recovering"
    RECOVERED = "recovered"
    SESSION_LOST = "session-lost"
    # Beyond the official Python SDK: group streams and group state.
    GROUP_STREAM = "group-stream"
    GROUP_STATE = "group-state"


class RetryMode(_CaseInsensitiveStrEnum):
    """Back-off mode of a retry policy (values match ``azure.core``'s ``RetryMode``)."""

    Exponential = "exponential"
    Fixed = "fixed"
