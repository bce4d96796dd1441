"""The Python examples of the seed README (Microsoft's client README) run unchanged except
for the import line (``azure.webpubsub.client`` -> ``webpubsub_client``), the URL placeholder
(replaced by a real client access URL) and a stray ``}`` after the last example, which is not
valid Python.

The snippets are kept as text and executed, so their spelling is exactly the README's.
"""

import textwrap
import threading

import pytest

import webpubsub_client

from conftest import WAIT

IMPORT = "from webpubsub_client import WebPubSubClient\n"

SNIPPET_AUTHENTICATE = """
from webpubsub_client import WebPubSubClient

client = WebPubSubClient("<<client-access-url>>")

with client:
    ...
"""

SNIPPET_JOIN_AND_SEND = """
client.on("group-message", lambda e: print(f"Received message: {e.data}"));

group_name = "group1";

# client need to join group to receive messages from the group.
client.join_group(group_name);

# send a message to group
client.send_to_group(group_name, "hello world", "text");
"""

SNIPPET_JSON_PROTOCOL = """
# Change to use json.webpubsub.azure.v1
client = WebPubSubClient("<client-access-url>", WebPubSubClientOptions(WebPubSubJsonProtocol()))
"""

SNIPPET_RELIABLE_PROTOCOL = """
# Change to use json.reliable.webpubsub.azure.v1
client = WebPubSubClient("<client-access-url>", WebPubSubClientOptions(WebPubSubJsonReliableProtocol()))
"""

SNIPPET_SERVER_MESSAGES = """
client.on("server-message", lambda e: print(f"Received message {e.data}"))
client.on("server-message", lambda e: print(f"Received messagefrom {e.group}: {e.data}"))
"""

SNIPPET_CONNECTED = """
client.on("connected", lambda e: print(f"Connection {e.connection_id} is connected"))
"""

SNIPPET_DISCONNECTED = """
client.on("disconnected", lambda e: print(f"Connection disconnected: {e.message}"))
"""

SNIPPET_REJOIN = """
# By default auto_rejoin_groups=True. You can disable it by setting to False.
client = WebPubSubClient("<client-access-url>", WebPubSubClientOptions(auto_restore_groups=True));

client.on("rejoin-group-failed", lambda e: print(f"Rejoin group {e.group} failed: {e.error}"))
"""

SNIPPET_RETRY = """
try:
  client.join_group(group_name)
except Exception as e:
  ack_id = None
  if isinstance(e, SendMessageError):
    ack_id = e.ack_id
  
  client.join_group(group_name, JoinGroupOptions(ack_id=ack_id));
"""

# The names the README's snippets use without importing them.
README_NAMES = [
    "WebPubSubClientOptions",
    "WebPubSubJsonProtocol",
    "WebPubSubJsonReliableProtocol",
    "SendMessageError",
    "JoinGroupOptions",
]


def run(snippet: str, namespace: dict, url: str) -> dict:
    code = textwrap.dedent(snippet).replace("<<client-access-url>>", url).replace("<client-access-url>", url)
    exec(compile(code, "<seed README>", "exec"), namespace)  # noqa: S102 - test of documentation
    return namespace


def base_namespace() -> dict:
    ns = {"__name__": "seed_readme"}
    exec(IMPORT, ns)  # noqa: S102
    for name in README_NAMES:
        ns[name] = getattr(webpubsub_client, name)
    return ns


def test_readme_names_are_importable():
    for name in README_NAMES + ["WebPubSubClient"]:
        assert hasattr(webpubsub_client, name), name


def test_authenticate_and_context_manager(emulator, hub):
    ns = run(SNIPPET_AUTHENTICATE, {"__name__": "seed_readme"}, emulator.client_url(hub))
    assert not ns["client"].is_connected()


def printing_namespace(printed: list) -> dict:
    """The README's namespace, with `print` recording into `printed`: its callbacks print from the
    library's callback thread, and stdout's buffering could split a line across captures."""
    ns = base_namespace()
    ns["print"] = lambda *args, **_: printed.append(" ".join(str(a) for a in args))
    return ns


def test_join_group_and_send(emulator, hub):
    printed = []
    ns = printing_namespace(printed)
    ns["client"] = client = webpubsub_client.WebPubSubClient(emulator.client_url(hub))
    got = threading.Event()
    with client:
        run(SNIPPET_JOIN_AND_SEND, ns, "")
        # events run in order: once a later marker arrives, the README's print has run
        client.subscribe("group-message", lambda e: e.data == "marker" and got.set())
        client.send_to_group("group1", "marker", "text")
        assert got.wait(WAIT)
    assert "Received message: hello world" in printed


@pytest.mark.parametrize(
    "snippet,protocol",
    [
        (SNIPPET_JSON_PROTOCOL, "json.webpubsub.azure.v1"),
        (SNIPPET_RELIABLE_PROTOCOL, "json.reliable.webpubsub.azure.v1"),
    ],
)
def test_specify_subprotocol(emulator, hub, snippet, protocol):
    ns = run(snippet, base_namespace(), emulator.client_url(hub))
    with ns["client"]:
        conns = emulator.connections(hub)
    assert [c["subprotocol"] for c in conns] == [protocol]


def test_server_and_lifecycle_callbacks(emulator, hub):
    printed = []
    ns = printing_namespace(printed)
    ns["client"] = client = webpubsub_client.WebPubSubClient(emulator.client_url(hub))
    for snippet in (SNIPPET_SERVER_MESSAGES, SNIPPET_CONNECTED, SNIPPET_DISCONNECTED):
        run(snippet, ns, "")
    got = threading.Event()
    client.subscribe("server-message", lambda e: got.set())
    with client:
        emulator.service(hub).send_to_all("from server", content_type="text/plain")
        assert got.wait(WAIT)
        conn_id = client.connection_id
    assert "Received message from server" in printed
    assert f"Connection {conn_id} is connected" in printed
    # the README's second server-message listener reads e.group, which server messages lack:
    # its AttributeError is logged and does not disturb the other listeners


def test_auto_rejoin_and_failure_callback(emulator, hub):
    ns = run(SNIPPET_REJOIN, base_namespace(), emulator.client_url(hub))
    client = ns["client"]
    with client:
        client.join_group("g")
    with client:
        from conftest import wait_until

        wait_until(lambda: any("g" in c["groups"] for c in emulator.connections(hub)), what="auto rejoin")


def test_operation_retry_with_ack_id(emulator, hub):
    ns = base_namespace()
    ns["client"] = client = webpubsub_client.WebPubSubClient(emulator.client_url(hub))
    ns["group_name"] = "retry-group"
    with client:
        run(SNIPPET_RETRY, ns, "")
        conns = emulator.connections(hub)
    assert conns[0]["groups"] == ["retry-group"]
