"""Official Python aio client against the emulator (no harness patches involved)."""

import asyncio

from azure.messaging.webpubsubclient.aio import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import SendMessageError
from azure.messaging.webpubsubservice.aio import WebPubSubServiceClient

from conftest import ALL_ROLES, JOIN_LEAVE

WAIT_S = 10.0


async def open_client(connection_string, hub, user_id, roles=ALL_ROLES, **options):
    service = WebPubSubServiceClient.from_connection_string(connection_string, hub=hub)

    async def url_provider():
        return (await service.get_client_access_token(user_id=user_id, roles=roles))["url"]

    client = WebPubSubClient(credential=WebPubSubClientCredential(url_provider), **options)
    connected = asyncio.Event()
    messages = asyncio.Queue()

    async def on_connected(_args):
        connected.set()

    async def on_group_message(args):
        await messages.put(args)

    await client.subscribe("connected", on_connected)
    await client.subscribe("group-message", on_group_message)
    await client.open()
    await asyncio.wait_for(connected.wait(), WAIT_S)
    return client, service, messages


async def test_async_join_send_receive_and_forbidden(connection_string, hub):
    a, a_service, a_messages = await open_client(connection_string, hub, "async-a")
    b, b_service, _ = await open_client(
        connection_string, hub, "async-b", roles=[JOIN_LEAVE], message_retry_total=0
    )
    try:
        await a.join_group("ag")
        await a.send_to_group("ag", {"x": 1}, "json")
        message = await asyncio.wait_for(a_messages.get(), WAIT_S)
        assert (message.group, message.data, message.from_user_id) == ("ag", {"x": 1}, "async-a")
        try:
            await b.send_to_group("ag", "nope", "text")
            raise AssertionError("send without sendToGroup role succeeded")
        except SendMessageError as err:
            assert err.error_detail.name == "Forbidden"
        await a_service.send_to_group("ag", "from rest", content_type="text/plain")
        message = await asyncio.wait_for(a_messages.get(), WAIT_S)
        assert (message.data, message.from_user_id) == ("from rest", None)
    finally:
        await a.close()
        await b.close()
        await a_service.close()
        await b_service.close()


async def test_async_recovery_after_drop_loses_and_duplicates_nothing(connection_string, hub, admin):
    rx, rx_service, rx_messages = await open_client(connection_string, hub, "async-rx")
    tx, tx_service, _ = await open_client(connection_string, hub, "async-tx")
    disconnected = []

    async def on_disconnected(args):
        disconnected.append(args)

    await rx.subscribe("disconnected", on_disconnected)

    # Hold the client's recovery attempt (its _connect with a recover_start_time) until released.
    attempted, released, recovered = asyncio.Event(), asyncio.Event(), asyncio.Event()
    connect = rx._connect

    async def held_connect(url, reconnect_tried_times=None, recover_start_time=None):
        if recover_start_time is not None:
            attempted.set()
            await asyncio.wait_for(released.wait(), WAIT_S * 2)
            await connect(url, reconnect_tried_times, recover_start_time)
            recovered.set()
            return
        await connect(url, reconnect_tried_times, recover_start_time)

    rx._connect = held_connect
    try:
        await rx.join_group("aseq")
        first_id = rx._connection_id
        before = [f"a{i}" for i in range(1, 6)]
        during = [f"a{i}" for i in range(6, 21)]
        for payload in before:
            await tx.send_to_group("aseq", payload, "text")
        got = [(await asyncio.wait_for(rx_messages.get(), WAIT_S)).data for _ in before]
        admin.drop(hub, first_id)
        await asyncio.wait_for(attempted.wait(), WAIT_S)
        for payload in during:
            await tx.send_to_group("aseq", payload, "text")
        released.set()
        await asyncio.wait_for(recovered.wait(), WAIT_S * 2)
        await tx.send_to_group("aseq", "end", "text")
        while not got or got[-1] != "end":
            got.append((await asyncio.wait_for(rx_messages.get(), WAIT_S * 2)).data)
        assert sorted(got) == sorted(before + during + ["end"]), got
        assert len(got) == len(set(got))
        assert rx._connection_id == first_id
        assert disconnected == []
    finally:
        await rx.close()
        await tx.close()
        await rx_service.close()
        await tx_service.close()
