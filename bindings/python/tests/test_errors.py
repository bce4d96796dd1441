"""Each error the client raises or reports."""

import threading

import pytest

from webpubsub_client import (
    JoinGroupOptions,
    OnRejoinGroupFailedArgs,
    OpenClientError,
    SendMessageError,
    WebPubSubClient,
    WebPubSubClientCredential,
    WebPubSubProtocolType,
)

from conftest import WAIT


def test_forbidden_join_and_send(emulator, hub):
    client = WebPubSubClient(emulator.client_url(hub, roles=[]), message_retry_total=0)
    with client:
        with pytest.raises(SendMessageError) as join_err:
            client.join_group("g")
        with pytest.raises(SendMessageError) as send_err:
            client.send_to_group("g", "x", "text")
    for err in (join_err.value, send_err.value):
        assert err.error_detail.name == "Forbidden"
        assert isinstance(err.ack_id, int) and err.ack_id > 0
    # error_detail.message is the service's message unchanged (as the official client gives it).
    assert join_err.value.error_detail.message == "The connection is not authorized to join or leave group 'g'."
    assert send_err.value.error_detail.message == "The connection is not authorized to send messages to group 'g'."


def test_retry_with_same_ack_id(emulator, hub):
    """The seed README's retry pattern: reuse the failed operation's ack id."""
    client = WebPubSubClient(emulator.client_url(hub))
    with client:
        client.join_group("g", ack_id=1000)
        # the same ack id again is deduplicated by the service and counts as success
        client.join_group("g", JoinGroupOptions(ack_id=1000))
        client.send_to_group("g", "a", "text", ack_id=2000)
        client.send_to_group("g", "a", "text", ack_id=2000)


def test_send_when_not_open_raises(emulator, hub):
    client = WebPubSubClient(emulator.client_url(hub))
    with pytest.raises(SendMessageError):
        client.send_to_group("g", "x", "text")
    with pytest.raises(SendMessageError):
        client.join_group("g")


def test_bad_arguments(emulator, hub):
    client = WebPubSubClient(emulator.client_url(hub))
    with pytest.raises(TypeError):
        client.send_to_group("g", b"bytes", "text")
    with pytest.raises(TypeError):
        client.send_to_group("g", "str", "binary")
    with pytest.raises(TypeError):
        client.send_to_group("g", "x", "nonsense")
    with pytest.raises(ValueError):
        client.join_group("bad\0group")
    with pytest.raises(ValueError):
        client.subscribe("no-such-event", print)
    with pytest.raises(ValueError):
        client.join_group("g", ack_id=-1)
    with pytest.raises(TypeError):
        WebPubSubClient(42)  # type: ignore[arg-type]


def test_invalid_url_rejected(emulator, hub):
    with pytest.raises((ValueError, OpenClientError)):
        client = WebPubSubClient("not a url")
        client.open()


def test_unauthorized_open(emulator, hub):
    url = emulator.client_url(hub).split("access_token=")[0] + "access_token=garbage"
    client = WebPubSubClient(url, start_timeout=5)
    with pytest.raises(OpenClientError):
        client.open()
    assert not client.is_connected()


def test_provider_failure_fails_open(emulator, hub):
    def provider():
        raise RuntimeError("no URL today")

    client = WebPubSubClient(WebPubSubClientCredential(provider), start_timeout=5)
    with pytest.raises(OpenClientError):
        client.open()


def test_rejoin_group_failed_event(emulator, hub):
    urls = iter([emulator.client_url(hub)])  # later connections get a URL without roles

    def provider():
        return next(urls, None) or emulator.client_url(hub, roles=[])

    client = WebPubSubClient(
        WebPubSubClientCredential(provider), protocol_type=WebPubSubProtocolType.JSON, message_retry_total=0
    )
    failed = []
    got = threading.Event()

    def on_failed(e: OnRejoinGroupFailedArgs):
        failed.append(e)
        got.set()

    client.subscribe("rejoin-group-failed", on_failed)
    with client:
        client.join_group("g")
        emulator.close(hub, client.connection_id, 1001)
        assert got.wait(WAIT)
    assert failed[0].group == "g"
    assert isinstance(failed[0].error, SendMessageError)
    assert failed[0].error.error_detail.name == "Forbidden"


def test_ack_ids_above_the_library_range_are_refused(emulator, hub):
    with WebPubSubClient(emulator.client_url(hub)) as client:
        for bad in (2**63, 2**64 - 1):
            with pytest.raises(SendMessageError) as info:
                client.join_group("g", ack_id=bad)
            assert info.value.error_detail.name == "WPS_ERR_INVALID_ARG"
            assert "was not allocated by this client" in info.value.error_detail.message
        client.join_group("g", ack_id=2**63 - 1)
        with pytest.raises(SendMessageError) as info:
            client.send_to_group("nope", "x", "text", ack_id=2**64 - 1)
        assert info.value.error_detail.name == "WPS_ERR_INVALID_ARG"


def test_user_agent_must_be_printable_ascii(emulator, hub):
    with WebPubSubClient(emulator.client_url(hub), user_agent="gateway/2.1") as client:
        assert client.is_connected()
    with pytest.raises(ValueError, match="user_agent"):
        WebPubSubClient(emulator.client_url(hub), user_agent="bad\r\nX-Injected: 1").open()


def test_service_message_is_the_services_own_text():
    """error_detail.message drops the native "service rejected ack N: NAME: " prefix only."""
    from webpubsub_client._core import service_message

    assert service_message("service rejected ack 3: Forbidden: no: not you", "Forbidden") == "no: not you"
    assert service_message("service rejected ack 4: Forbidden", "Forbidden") == ""
    # Anything else, or a name that does not match, is kept as the library wrote it.
    assert service_message("timed out (ack 5)", None) == "timed out (ack 5)"
    other = "service rejected ack 6: Forbidden: x"
    assert service_message(other, "BadRequest") == other
    assert service_message(None, "Forbidden") is None
