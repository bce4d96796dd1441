"""The asyncio client (same API as ``azure.messaging.webpubsubclient.aio``)."""

from ._client import WebPubSubClient, WebPubSubClientCredential
from ._streams import AsyncGroupStreamReader, AsyncGroupStreamWriter

__all__ = ["WebPubSubClient", "WebPubSubClientCredential", "AsyncGroupStreamReader", "AsyncGroupStreamWriter"]
