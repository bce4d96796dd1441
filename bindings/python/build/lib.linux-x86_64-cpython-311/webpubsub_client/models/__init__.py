"""Models, enums and errors of the public API (``webpubsub_client.models``)."""

from ._enums import CallbackType, RetryMode, WebPubSubDataType, WebPubSubProtocolType
from ._errors import (
    AckMessageError,
    OpenClientError,
    ReconnectError,
    RecoverError,
    SendMessageError,
    WebPubSubClientError,
)
from ._models import (
    JoinGroupOptions,
    LeaveGroupOptions,
    OnConnectedArgs,
    OnDisconnectedArgs,
    OnGroupDataMessageArgs,
    OnRejoinGroupFailedArgs,
    OnServerDataMessageArgs,
    OnStoppedArgs,
    SendEventOptions,
    SendMessageErrorOptions,
    SendToGroupOptions,
    WebPubSubClientOptions,
    WebPubSubJsonProtocol,
    WebPubSubJsonReliableProtocol,
)

__all__ = [
    "WebPubSubDataType",
    "WebPubSubProtocolType",
    "CallbackType",
    "RetryMode",
    "OnConnectedArgs",
    "OnDisconnectedArgs",
    "OnStoppedArgs",
    "OnServerDataMessageArgs",
    "OnGroupDataMessageArgs",
    "OnRejoinGroupFailedArgs",
    "SendMessageErrorOptions",
    "SendMessageError",
    "OpenClientError",
    "ReconnectError",
    "RecoverError",
    "AckMessageError",
    "WebPubSubClientError",
    "WebPubSubClientOptions",
    "WebPubSubJsonProtocol",
    "WebPubSubJsonReliableProtocol",
    "JoinGroupOptions",
    "LeaveGroupOptions",
    "SendToGroupOptions",
    "SendEventOptions",
]
