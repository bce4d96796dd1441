"""Conversion of message payloads between Python values and the bytes the library carries.

Outbound, as the official client accepts them: ``text`` takes a ``str``; ``json`` takes any
JSON-serialisable value; ``binary`` and ``protobuf`` take a ``memoryview`` (``bytes`` and
``bytearray`` are accepted too). Inbound: ``text`` gives ``str``, ``json`` the parsed value,
``binary``/``protobuf`` a ``memoryview`` over a private copy of the bytes.
"""

import json
import logging
from typing import Any, Tuple, Union

from . import _native as n
from .models._enums import WebPubSubDataType

_LOGGER = logging.getLogger("webpubsub_client")

_TO_NATIVE = {
    WebPubSubDataType.TEXT: n.WPS_DATA_TEXT,
    WebPubSubDataType.JSON: n.WPS_DATA_JSON,
    WebPubSubDataType.BINARY: n.WPS_DATA_BINARY,
    WebPubSubDataType.PROTOBUF: n.WPS_DATA_PROTOBUF,
}
_FROM_NATIVE = {v: k for k, v in _TO_NATIVE.items()}


# Exact spellings (member values; members hash and compare as their value) resolved by one
# dictionary lookup; anything else goes through the enum's case-insensitive lookup.
_KNOWN = {member.value: member for member in WebPubSubDataType}
_KNOWN.update({member: member for member in WebPubSubDataType})


def data_type_of(value: Union[WebPubSubDataType, str]) -> WebPubSubDataType:
    """Normalise a data type given as enum member or string (``"text"``)."""
    known = _KNOWN.get(value) if isinstance(value, str) else None
    if known is not None:
        return known
    try:
        return WebPubSubDataType(value)
    except ValueError:
        raise TypeError(f"Unsupported dataType: {value}") from None


def encode(content: Any, data_type: Union[WebPubSubDataType, str]) -> Tuple[bytes, int]:
    """The payload bytes and native data type for an outbound message."""
    kind = data_type_of(data_type)
    if kind is WebPubSubDataType.TEXT:
        if not isinstance(content, str):
            raise TypeError("Message must be a string.")
        return content.encode("utf-8"), n.WPS_DATA_TEXT
    if kind is WebPubSubDataType.JSON:
        return json.dumps(content, separators=(",", ":")).encode("utf-8"), n.WPS_DATA_JSON
    if isinstance(content, (memoryview, bytes, bytearray)):
        return bytes(content), _TO_NATIVE[kind]
    raise TypeError("data must be memoryview when dataType is binary or protobuf")


def decode(raw: bytes, native_type: int) -> Tuple[WebPubSubDataType, Any]:
    """The data type and Python value of an inbound payload (``raw`` is already a copy).

    A data type this package does not know (from a newer library) is delivered as binary.
    """
    kind = _FROM_NATIVE.get(native_type, WebPubSubDataType.BINARY)
    if kind is WebPubSubDataType.TEXT:
        return kind, raw.decode("utf-8", errors="replace")
    if kind is WebPubSubDataType.JSON:
        text = raw.decode("utf-8", errors="replace")
        try:
            return kind, json.loads(text)
        except (ValueError, RecursionError) as e:
            # Nested deeper than Python's recursion limit raises RecursionError: the message is
            # still delivered, as its text, rather than dropped with its event.
            _LOGGER.warning("json message cannot be decoded (%s); delivering its text", type(e).__name__)
            return kind, text
    return kind, memoryview(raw)
