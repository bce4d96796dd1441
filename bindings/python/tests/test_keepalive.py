"""Keep-alive: a connection that goes silent (half-open) is detected and replaced.

A small TCP relay sits between the client and the emulator; "freezing" it stops forwarding
in both directions without closing anything, which is what a sleeping laptop or a dropped NAT
mapping looks like. Only keep-alive can notice that.
"""

import socket
import threading

from webpubsub_client import WebPubSubClient, WebPubSubClientCredential, WebPubSubProtocolType

from conftest import WAIT


class FreezableRelay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.frozen = threading.Event()
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            frozen_at_accept = self.frozen.is_set()
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, frozen_at_accept), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, frozen_at_accept: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self.frozen.is_set() and not frozen_at_accept:
                continue  # swallow: the peer never hears back
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.server.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


def test_keep_alive_detects_silent_connection(emulator, hub):
    port = int(emulator.endpoint.rsplit(":", 1)[1])
    relay = FreezableRelay(port)
    try:

        def provider():
            url = emulator.client_url(hub)
            return url.replace(f":{port}/", f":{relay.port}/")

        client = WebPubSubClient(
            WebPubSubClientCredential(provider),
            protocol_type=WebPubSubProtocolType.JSON,
            keep_alive_interval=0.2,
            keep_alive_timeout=1.0,
        )
        ids = []
        reconnected = threading.Event()
        lost = threading.Event()
        client.subscribe("connected", lambda e: (ids.append(e.connection_id), len(ids) == 2 and reconnected.set()))
        client.subscribe("disconnected", lambda e: lost.set())
        with client:
            relay.frozen.set()  # existing connection goes silent; new ones pass
            assert lost.wait(WAIT), "keep-alive did not detect the silent connection"
            assert reconnected.wait(WAIT)
            assert client.is_connected()
    finally:
        relay.close()


def test_keep_alive_recovers_silent_reliable_connection(emulator, hub, recorder):
    """Reliable protocol: the silent connection is recovered (same id) and still delivers."""
    port = int(emulator.endpoint.rsplit(":", 1)[1])
    relay = FreezableRelay(port)
    try:
        url = emulator.client_url(hub).replace(f":{port}/", f":{relay.port}/")
        client = WebPubSubClient(url, keep_alive_interval=0.2, keep_alive_timeout=1.0, message_retry_total=20)
        client.subscribe("group-message", lambda m: recorder.add(m.data))
        with client:
            conn_id = client.connection_id
            client.join_group("g")
            relay.frozen.set()
            client.send_to_group("g", "after-freeze", "text")
            recorder.wait_for(lambda items: "after-freeze" in items)
            assert client.connection_id == conn_id
    finally:
        relay.close()


def test_idle_connection_stays_up_with_keep_alive(emulator, hub):
    client = WebPubSubClient(emulator.client_url(hub), keep_alive_interval=0.1, keep_alive_timeout=1.0)
    lost = threading.Event()
    client.subscribe("disconnected", lambda e: lost.set())
    with client:
        # idle for several keep-alive timeouts: pongs keep the connection alive
        assert not lost.wait(2.5)
        assert client.is_connected()
        client.join_group("still-alive")
