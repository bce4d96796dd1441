"""Official Python client: recovery after a transport drop, reconnect after session expiry."""

from azure.messaging.webpubsubclient.models import WebPubSubProtocolType

from conftest import WAIT_S, RecoveryGate, drain_callbacks, wait_rejoined, watch_no_recovery


def group_payloads(inbox):
    return [m.data for m in inbox.of("group-message")]


def test_recovery_after_drop_same_connection_nothing_lost_nothing_duplicated(make_client, admin, hub):
    receiver, rx = make_client(user_id="receiver")
    sender, _ = make_client(user_id="sender")
    receiver.join_group("seq")
    first_id = receiver._connection_id
    gate = RecoveryGate(receiver)

    before = [f"m{i}" for i in range(1, 11)]
    during = [f"m{i}" for i in range(11, 31)]
    for payload in before:
        sender.send_to_group("seq", payload, "text")
    rx.wait_event("group-message", count=len(before))

    admin.drop(hub, first_id)
    assert gate.attempted.wait(WAIT_S), "client did not start recovery after :drop"
    # The transport is down and recovery is held: every send is acked by the emulator and
    # must be buffered for the receiver's session.
    for payload in during:
        sender.send_to_group("seq", payload, "text")
    gate.released.set()
    assert gate.recovered.wait(WAIT_S * 2), "recovery did not complete"

    sender.send_to_group("seq", "end", "text")
    rx.wait_event("group-message", where=lambda m: m.data == "end", timeout=WAIT_S * 2)
    drain_callbacks(receiver)

    received = group_payloads(rx)
    assert sorted(received) == sorted(before + during + ["end"]), received
    assert len(received) == len(set(received)), "a message was delivered twice"
    sequence_ids = [m.sequence_id for m in rx.of("group-message")]
    assert sorted(sequence_ids) == list(range(min(sequence_ids), min(sequence_ids) + len(sequence_ids)))

    assert receiver._connection_id == first_id
    assert len(rx.of("connected")) == 1
    assert rx.of("disconnected") == []
    assert not gate.reconnected.is_set()
    listed = {c["connectionId"]: c for c in admin.connections(hub)}
    assert listed[first_id]["groups"] == ["seq"]


def test_recovery_keeps_acked_state_duplicate_survives(make_client, admin, hub):
    client, inbox = make_client(user_id="dup-recover")
    client.join_group("g", ack_id=100)
    gate = RecoveryGate(client)
    admin.drop(hub, client._connection_id)
    assert gate.attempted.wait(WAIT_S)
    gate.released.set()
    assert gate.recovered.wait(WAIT_S * 2)
    client.join_group("g", ack_id=100)
    last = [f for f in inbox.frames if f.kind == "ack" and f.ack_id == 100][-1]
    assert last.success is False and last.error.name == "Duplicate"


def test_expire_forces_reconnect_with_new_connection_id_and_rejoin(make_client, admin, hub, service):
    client, inbox = make_client(user_id="expiring")
    client.join_group("g1")
    client.join_group("g2")
    first_id = client._connection_id
    no_recovery_codes = watch_no_recovery(client)
    admin.expire(hub, first_id)

    (disconnected,) = inbox.wait_event("disconnected", timeout=WAIT_S * 2)
    assert disconnected.connection_id == first_id
    second = inbox.wait_event("connected", count=2, timeout=WAIT_S * 2)[1]
    assert second.connection_id != first_id
    assert second.user_id == "expiring"
    wait_rejoined(inbox, groups=2)

    listed = {c["connectionId"]: c for c in admin.connections(hub)}
    assert first_id not in listed
    assert sorted(listed[second.connection_id]["groups"]) == ["g1", "g2"]
    service.send_to_group("g2", "after expiry", content_type="text/plain")
    inbox.wait_event("group-message", where=lambda m: m.data == "after expiry")
    # the recovery attempt was answered with 101 + close 1008, not a failed handshake
    assert no_recovery_codes == [1008]


def test_non_reliable_client_reconnects_after_drop(make_client, admin, hub):
    client, inbox = make_client(user_id="plain", protocol_type=WebPubSubProtocolType.JSON)
    client.join_group("g")
    first_id = client._connection_id
    admin.drop(hub, first_id)
    inbox.wait_event("disconnected")
    second = inbox.wait_event("connected", count=2, timeout=WAIT_S * 2)[1]
    assert second.connection_id != first_id
    wait_rejoined(inbox, groups=1)


def test_close_with_1008_is_not_recovered(make_client, admin, hub):
    client, inbox = make_client(user_id="policy")
    first_id = client._connection_id
    gate = RecoveryGate(client)
    no_recovery_codes = watch_no_recovery(client)
    admin.close(hub, first_id, 1008, "policy test")
    (disconnected,) = inbox.wait_event("disconnected")
    assert disconnected.message == "policy test"
    second = inbox.wait_event("connected", count=2, timeout=WAIT_S * 2)[1]
    assert second.connection_id != first_id
    assert not gate.attempted.is_set()
    assert no_recovery_codes == [1008]


def test_close_with_other_code_is_recovered(make_client, admin, hub, service):
    client, inbox = make_client(user_id="going-away")
    client.join_group("g")
    first_id = client._connection_id
    gate = RecoveryGate(client)
    gate.released.set()
    admin.close(hub, first_id, 4000, "transient")
    assert gate.recovered.wait(WAIT_S * 2), "client did not recover after close 4000"
    service.send_to_group("g", "after close", content_type="text/plain")
    inbox.wait_event("group-message", where=lambda m: m.data == "after close")
    assert client._connection_id == first_id
    assert inbox.of("disconnected") == []
    assert len(inbox.of("connected")) == 1
