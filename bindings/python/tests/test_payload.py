"""Inbound payload decoding, without a service."""

import logging

from webpubsub_client import WebPubSubDataType
from webpubsub_client import _native as n
from webpubsub_client._payload import decode


def test_json_nested_beyond_the_recursion_limit_arrives_as_text(caplog):
    deep = ("[" * 10_000 + "]" * 10_000).encode()
    with caplog.at_level(logging.WARNING, logger="webpubsub_client"):
        kind, value = decode(deep, n.WPS_DATA_JSON)
    assert kind is WebPubSubDataType.JSON
    assert value == deep.decode()
    assert "RecursionError" in caplog.text


def test_invalid_json_arrives_as_text_and_valid_json_decoded():
    assert decode(b"{not json", n.WPS_DATA_JSON) == (WebPubSubDataType.JSON, "{not json")
    assert decode(b'{"a":[1,2]}', n.WPS_DATA_JSON) == (WebPubSubDataType.JSON, {"a": [1, 2]})
