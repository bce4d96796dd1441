"""Official Python server SDK (REST) against the emulator, observed by official clients."""

import pytest
from azure.core.exceptions import HttpResponseError

from conftest import drain_callbacks, wait_rejoined


def test_send_to_all_reaches_every_connection(make_client, service):
    a, a_inbox = make_client(user_id="a")
    b, b_inbox = make_client(user_id="b")
    service.send_to_all({"hello": "all"}, content_type="application/json")
    for inbox in (a_inbox, b_inbox):
        (message,) = inbox.wait_event("server-message")
        assert message.data_type == "json"
        assert message.data == {"hello": "all"}
        assert message.sequence_id >= 1


def test_send_to_all_honours_excluded(make_client, service):
    a, a_inbox = make_client(user_id="a")
    b, b_inbox = make_client(user_id="b")
    service.send_to_all("not for a", content_type="text/plain", excluded=[a._connection_id])
    service.send_to_connection(a._connection_id, "marker", content_type="text/plain")
    b_inbox.wait_event("server-message")
    a_inbox.wait_event("server-message")
    assert a_inbox.data_of("server-message") == ["marker"]
    assert b_inbox.data_of("server-message") == ["not for a"]


def test_send_to_connection_text_and_binary(make_client, service):
    a, a_inbox = make_client(user_id="a")
    b, b_inbox = make_client(user_id="b")
    service.send_to_connection(a._connection_id, "just a", content_type="text/plain")
    service.send_to_connection(a._connection_id, b"\x01\x02\x03", content_type="application/octet-stream")
    first, second = a_inbox.wait_event("server-message", count=2)
    by_type = {m.data_type: m for m in (first, second)}
    assert by_type["text"].data == "just a"
    assert bytes(by_type["binary"].data) == b"\x01\x02\x03"
    service.send_to_connection(b._connection_id, "marker", content_type="text/plain")
    b_inbox.wait_event("server-message")
    assert b_inbox.data_of("server-message") == ["marker"]


def test_send_to_user_reaches_all_of_that_users_connections(make_client, service):
    u1a, u1a_inbox = make_client(user_id="user 1")
    u1b, u1b_inbox = make_client(user_id="user 1")
    u2, u2_inbox = make_client(user_id="user2")
    service.send_to_user("user 1", "for user 1", content_type="text/plain")
    service.send_to_user("user2", "for user2", content_type="text/plain")
    for inbox in (u1a_inbox, u1b_inbox):
        inbox.wait_event("server-message")
        assert inbox.data_of("server-message") == ["for user 1"]
    u2_inbox.wait_event("server-message")
    assert u2_inbox.data_of("server-message") == ["for user2"]


def test_group_send_via_rest_arrives_as_group_message_without_from_user(make_client, service):
    member, m_inbox = make_client(user_id="member")
    outsider, o_inbox = make_client(user_id="outsider")
    member.join_group("room")
    service.send_to_group("room", {"k": [1, 2]}, content_type="application/json")
    service.send_to_group("room", b"\x04\x05", content_type="application/octet-stream")
    first, second = m_inbox.wait_event("group-message", count=2)
    assert (first.group, first.data_type, first.data) == ("room", "json", {"k": [1, 2]})
    assert (second.group, second.data_type, bytes(second.data)) == ("room", "binary", b"\x04\x05")
    assert first.from_user_id is None
    service.send_to_connection(outsider._connection_id, "marker", content_type="text/plain")
    o_inbox.wait_event("server-message")
    assert o_inbox.of("group-message") == []


def test_close_connection_fires_disconnected_with_reason(make_client, service):
    client, inbox = make_client(user_id="victim", reconnect_retry_total=0)
    connection_id = client._connection_id
    service.close_connection(connection_id, reason="closed by test")
    (disconnected,) = inbox.wait_event("disconnected")
    assert disconnected.connection_id == connection_id
    assert disconnected.message == "closed by test"
    inbox.wait_event("stopped")
    assert not service.connection_exists(connection_id)


def test_close_connection_then_client_reconnects_with_new_id(make_client, service):
    client, inbox = make_client(user_id="phoenix")
    first_id = client._connection_id
    client.join_group("kept")
    service.close_connection(first_id, reason="go away")
    inbox.wait_event("disconnected")
    second = inbox.wait_event("connected", count=2)[1]
    assert second.connection_id != first_id
    assert second.user_id == "phoenix"
    # auto rejoin: a group message reaches the new connection
    wait_rejoined(inbox, groups=1)
    drain_callbacks(client)
    service.send_to_group("kept", "after reconnect", content_type="text/plain")
    inbox.wait_event("group-message", where=lambda m: m.data == "after reconnect")


def test_existence_checks(make_client, service):
    client, _ = make_client(user_id="exists-user")
    cid = client._connection_id
    assert service.connection_exists(cid)
    assert not service.connection_exists("no-such-connection")
    assert service.user_exists("exists-user")
    assert not service.user_exists("no-such-user")
    assert not service.group_exists("g")
    client.join_group("g")
    assert service.group_exists("g")
    client.leave_group("g")
    assert not service.group_exists("g")


def test_add_and_remove_connection_to_group(make_client, service):
    client, inbox = make_client(user_id="managed", roles=[])
    cid = client._connection_id
    service.add_connection_to_group("managed-group", cid)
    assert service.group_exists("managed-group")
    members = list(service.list_connections(group="managed-group"))
    assert [(m.connection_id, m.user_id) for m in members] == [(cid, "managed")]
    service.send_to_group("managed-group", "in", content_type="text/plain")
    inbox.wait_event("group-message", where=lambda m: m.data == "in")
    service.remove_connection_from_group("managed-group", cid)
    assert not service.group_exists("managed-group")
    assert list(service.list_connections(group="managed-group")) == []
    service.send_to_group("managed-group", "out", content_type="text/plain")
    service.send_to_connection(cid, "marker", content_type="text/plain")
    inbox.wait_event("server-message")
    assert inbox.data_of("group-message") == ["in"]


def test_user_group_membership_and_remove_from_all_groups(make_client, service):
    a, a_inbox = make_client(user_id="grouped")
    b, b_inbox = make_client(user_id="grouped")
    service.add_user_to_group("team", "grouped")
    members = sorted(m.connection_id for m in service.list_connections(group="team"))
    assert members == sorted([a._connection_id, b._connection_id])
    service.remove_connection_from_all_groups(a._connection_id)
    assert [m.connection_id for m in service.list_connections(group="team")] == [b._connection_id]
    service.remove_user_from_group("team", "grouped")
    assert not service.group_exists("team")


def test_list_connections_pages(make_client, service):
    clients = [make_client(user_id=f"p{i}")[0] for i in range(3)]
    for c in clients:
        c.join_group("paged")
    pages = list(service.list_connections(group="paged").by_page())
    listed = sorted(m.connection_id for page in pages for m in page)
    assert listed == sorted(c._connection_id for c in clients)
    top_two = list(service.list_connections(group="paged", top=2))
    assert len(top_two) == 2


def test_close_all_connections(make_client, service):
    a, a_inbox = make_client(user_id="a", reconnect_retry_total=0)
    b, b_inbox = make_client(user_id="b", reconnect_retry_total=0)
    c, c_inbox = make_client(user_id="c", reconnect_retry_total=0)
    service.close_all_connections(excluded=[c._connection_id], reason="everyone out")
    for inbox in (a_inbox, b_inbox):
        (d,) = inbox.wait_event("disconnected")
        assert d.message == "everyone out"
    assert service.connection_exists(c._connection_id)
    assert not service.connection_exists(a._connection_id)
    assert c_inbox.of("disconnected") == []


def test_close_group_and_user_connections(make_client, service):
    a, a_inbox = make_client(user_id="ua", reconnect_retry_total=0)
    b, b_inbox = make_client(user_id="ub", reconnect_retry_total=0)
    a.join_group("doomed")
    service.close_group_connections("doomed", reason="group closed")
    assert a_inbox.wait_event("disconnected")[0].message == "group closed"
    service.close_user_connections("ub", reason="user closed")
    assert b_inbox.wait_event("disconnected")[0].message == "user closed"


def test_grant_check_revoke_permission(make_client, service):
    client, _ = make_client(user_id="perm", roles=[], message_retry_total=0)
    cid = client._connection_id
    assert not service.has_permission("joinLeaveGroup", cid, target_name="g")
    with pytest.raises(Exception):
        client.join_group("g")
    service.grant_permission("joinLeaveGroup", cid, target_name="g")
    assert service.has_permission("joinLeaveGroup", cid, target_name="g")
    assert not service.has_permission("joinLeaveGroup", cid, target_name="other")
    client.join_group("g")
    service.grant_permission("sendToGroup", cid)
    assert service.has_permission("sendToGroup", cid, target_name="anything")
    client.send_to_group("g", "allowed now", "text")
    service.revoke_permission("sendToGroup", cid)
    assert not service.has_permission("sendToGroup", cid, target_name="anything")
    with pytest.raises(Exception) as err:
        client.send_to_group("g", "revoked", "text")
    assert err.value.error_detail.name == "Forbidden"


def test_rest_rejects_a_token_signed_with_another_key(connection_string, hub):
    from azure.messaging.webpubsubservice import WebPubSubServiceClient

    endpoint = connection_string.split("Endpoint=")[1].split(";")[0]
    wrong = WebPubSubServiceClient.from_connection_string(
        f"Endpoint={endpoint};AccessKey=not-the-right-key-not-the-right-key;Version=1.0;", hub=hub
    )
    with pytest.raises(HttpResponseError) as err:
        wrong.send_to_all("x", content_type="text/plain")
    assert err.value.status_code == 401


def test_odata_filter_on_send_to_all_and_group(make_client, service):
    a, a_inbox = make_client(user_id="alpha")
    b, b_inbox = make_client(user_id="beta")
    c, c_inbox = make_client(user_id="gamma")
    a.join_group("red")
    b.join_group("red")
    c.join_group("blue")
    service.send_to_all("only alpha", content_type="text/plain", filter="userId eq 'alpha'")
    service.send_to_all("red members", content_type="text/plain", filter="'red' in groups")
    service.send_to_all("not red", content_type="text/plain", filter="not('red' in groups)")
    service.send_to_group("red", "red but not beta", content_type="text/plain", filter="userId ne 'beta'")
    service.send_to_all("barrier", content_type="text/plain")
    for inbox in (a_inbox, b_inbox, c_inbox):
        inbox.wait_event("server-message", where=lambda m: m.data == "barrier")
    drain_callbacks(a)
    drain_callbacks(b)
    drain_callbacks(c)
    assert sorted(a_inbox.data_of("server-message")) == ["barrier", "only alpha", "red members"]
    assert sorted(b_inbox.data_of("server-message")) == ["barrier", "red members"]
    assert sorted(c_inbox.data_of("server-message")) == ["barrier", "not red"]
    a_inbox.wait_event("group-message")
    assert a_inbox.data_of("group-message") == ["red but not beta"]
    assert b_inbox.of("group-message") == []
