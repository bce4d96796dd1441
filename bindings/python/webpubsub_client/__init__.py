"""Azure Web PubSub client for Python on the native ``libwebpubsub_client`` engine.

Drop-in for ``azure.messaging.webpubsubclient`` 1.1.0: the same classes, keywords, events and
errors. The asyncio client is :mod:`webpubsub_client.aio`.
"""

from ._client import WebPubSubClient, WebPubSubClientCredential
from ._group_state import GroupStateCache
from ._streams import GroupStreamReader, GroupStreamWriter
from ._version import VERSION
from .models import (
    AckMessageError,
    CallbackType,
    GroupStateRecord,
    GroupStreamError,
    JoinGroupOptions,
    LeaveGroupOptions,
    OnConnectedArgs,
    OnDisconnectedArgs,
    OnGroupDataMessageArgs,
    OnGroupStateArgs,
    OnRecoveredArgs,
    OnRecoveringArgs,
    OnRejoinGroupFailedArgs,
    OnSessionLostArgs,
    OnServerDataMessageArgs,
    OnStoppedArgs,
    OpenClientError,
    ReconnectError,
    RecoverError,
    RetryMode,
    SendEventOptions,
    SendMessageError,
    SendMessageErrorOptions,
    SendToGroupOptions,
    StreamFragment,
    WebPubSubClientError,
    WebPubSubClientOptions,
    WebPubSubDataType,
    WebPubSubJsonProtocol,
    WebPubSubJsonReliableProtocol,
    WebPubSubProtocolType,
)

__version__ = VERSION


def native_version() -> str:
    """The version string of the loaded native library (``wps_version_string``)."""
    from ._native import version_string

    return version_string()


__all__ = [
    "WebPubSubClient",
    "WebPubSubClientCredential",
    "native_version",
    "GroupStateCache",
    "GroupStateRecord",
    "GroupStreamError",
    "GroupStreamReader",
    "GroupStreamWriter",
    "OnGroupStateArgs",
    "StreamFragment",
    "AckMessageError",
    "CallbackType",
    "JoinGroupOptions",
    "LeaveGroupOptions",
    "OnConnectedArgs",
    "OnDisconnectedArgs",
    "OnGroupDataMessageArgs",
    "OnRejoinGroupFailedArgs",
    "OnRecoveringArgs",
    "OnRecoveredArgs",
    "OnSessionLostArgs",
    "OnServerDataMessageArgs",
    "OnStoppedArgs",
    "OpenClientError",
    "ReconnectError",
    "RecoverError",
    "RetryMode",
    "SendEventOptions",
    "SendMessageError",
    "SendMessageErrorOptions",
    "SendToGroupOptions",
    "WebPubSubClientError",
    "WebPubSubClientOptions",
    "WebPubSubDataType",
    "WebPubSubJsonProtocol",
    "WebPubSubJsonReliableProtocol",
    "WebPubSubProtocolType",
]
