"""The asyncio client (same API as ``azure.messaging.webpubsubclient.aio``)."""

from ._client import WebPubSubClient, WebPubSubClientCredential

__all__ = ["WebPubSubClient", "WebPubSubClientCredential"]
