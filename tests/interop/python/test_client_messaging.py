"""Official Python client against the emulator: connect, groups, data types, acks, roles."""

import pytest
from azure.messaging.webpubsubclient.models import SendMessageError, WebPubSubProtocolType

from conftest import JOIN_LEAVE, SEND_TO_GROUP


def acks(inbox, ack_id):
    return [f for f in inbox.frames if f.kind == "ack" and f.ack_id == ack_id]


def test_connected_event_carries_connection_and_user_id(make_client, admin, hub):
    client, inbox = make_client(user_id="alice")
    (connected,) = inbox.of("connected")
    assert connected.user_id == "alice"
    assert connected.connection_id
    assert client._connection_id == connected.connection_id
    listed = admin.connections(hub)
    assert [c["connectionId"] for c in listed] == [connected.connection_id]
    assert listed[0]["userId"] == "alice"
    assert listed[0]["subprotocol"] == "json.reliable.webpubsub.azure.v1"


def test_non_reliable_protocol_connects_without_reconnection_token(make_client, admin, hub):
    client, inbox = make_client(user_id="bob", protocol_type=WebPubSubProtocolType.JSON)
    inbox.wait_for(lambda: [f for f in inbox.frames if f.kind == "connected"], what="connected frame")
    frame = next(f for f in inbox.frames if f.kind == "connected")
    assert frame.reconnection_token is None
    assert admin.connections(hub)[0]["subprotocol"] == "json.webpubsub.azure.v1"


@pytest.mark.parametrize(
    "data_type, content, expected",
    [
        ("text", "hello text", "hello text"),
        ("json", {"n": 1, "s": "x", "nested": {"ok": True}}, {"n": 1, "s": "x", "nested": {"ok": True}}),
        ("binary", memoryview(b"\x00\x01\xfe\xff"), b"\x00\x01\xfe\xff"),
    ],
)
def test_join_send_receive_each_data_type(make_client, admin, hub, data_type, content, expected):
    receiver, rx = make_client(user_id="receiver")
    sender, _ = make_client(user_id="sender")
    receiver.join_group("g1")
    groups = {c["connectionId"]: c["groups"] for c in admin.connections(hub)}
    assert groups[receiver._connection_id] == ["g1"]
    assert groups[sender._connection_id] == []
    sender.send_to_group("g1", content, data_type)
    (message,) = rx.wait_event("group-message")
    assert message.group == "g1"
    assert message.from_user_id == "sender"
    assert message.data_type == data_type
    data = bytes(message.data) if data_type == "binary" else message.data
    assert data == expected
    assert message.sequence_id >= 1


def test_no_echo_suppresses_only_the_senders_copy(make_client):
    a, a_inbox = make_client(user_id="a")
    b, b_inbox = make_client(user_id="b")
    a.join_group("g")
    b.join_group("g")
    a.send_to_group("g", "quiet", "text", no_echo=True)
    a.send_to_group("g", "loud", "text")
    b_inbox.wait_event("group-message", count=2)
    a_inbox.wait_event("group-message", where=lambda m: m.data == "loud")
    assert sorted(b_inbox.data_of("group-message")) == ["loud", "quiet"]
    assert a_inbox.data_of("group-message") == ["loud"]


def test_leave_group_stops_delivery(make_client):
    a, a_inbox = make_client(user_id="a")
    b, _ = make_client(user_id="b")
    a.join_group("g")
    b.send_to_group("g", "one", "text")
    a_inbox.wait_event("group-message")
    a.leave_group("g")
    b.send_to_group("g", "two", "text")
    a.join_group("marker")
    b.send_to_group("marker", "after-leave", "text")
    a_inbox.wait_event("group-message", where=lambda m: m.group == "marker")
    assert a_inbox.data_of("group-message") == ["one", "after-leave"]


def test_send_without_role_is_forbidden(make_client):
    client, inbox = make_client(user_id="limited", roles=[JOIN_LEAVE], message_retry_total=0)
    with pytest.raises(SendMessageError) as err:
        client.send_to_group("g", "nope", "text", ack_id=41)
    assert err.value.error_detail.name == "Forbidden"
    assert err.value.ack_id == 41
    (ack,) = acks(inbox, 41)
    assert ack.success is False


def test_join_without_role_is_forbidden(make_client):
    client, _ = make_client(user_id="limited", roles=[SEND_TO_GROUP], message_retry_total=0)
    with pytest.raises(SendMessageError) as err:
        client.join_group("g")
    assert err.value.error_detail.name == "Forbidden"


def test_group_scoped_role_allows_only_that_group(make_client):
    client, _ = make_client(
        user_id="scoped", roles=[f"{JOIN_LEAVE}.allowed", f"{SEND_TO_GROUP}.allowed"], message_retry_total=0
    )
    client.join_group("allowed")
    client.send_to_group("allowed", "ok", "text")
    with pytest.raises(SendMessageError) as err:
        client.send_to_group("other", "nope", "text")
    assert err.value.error_detail.name == "Forbidden"


def test_reused_ack_id_is_acknowledged_as_duplicate(make_client):
    client, inbox = make_client(user_id="dup")
    client.join_group("g", ack_id=7)
    client.join_group("g", ack_id=7)  # the client treats a Duplicate ack as success
    client.send_to_group("g", "first", "text", ack_id=8)
    client.send_to_group("g", "again", "text", ack_id=8)
    inbox.wait_for(lambda: len(acks(inbox, 8)) == 2, what="two acks for id 8")
    first, second = acks(inbox, 7)
    assert first.success is True and first.error is None
    assert second.success is False and second.error.name == "Duplicate"
    first, second = acks(inbox, 8)
    assert first.success is True
    assert second.success is False and second.error.name == "Duplicate"
    inbox.wait_event("group-message")
    assert inbox.data_of("group-message") == ["first"]


def test_groups_from_token_are_joined_at_connect(make_client, service):
    client, inbox = make_client(user_id="auto", groups=["preset"])
    service.send_to_group("preset", "to preset", content_type="text/plain")
    (message,) = inbox.wait_event("group-message")
    assert message.group == "preset" and message.data == "to preset"
