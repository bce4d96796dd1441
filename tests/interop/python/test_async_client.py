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
