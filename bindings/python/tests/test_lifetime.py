"""Client lifetime: interpreter exit with open clients, garbage collection, calls from callbacks."""

import gc
import subprocess
import sys
import textwrap
import threading

from webpubsub_client import WebPubSubClient

from conftest import WAIT, wait_until


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )


def test_open_client_closed_at_interpreter_exit(emulator, hub):
    url = emulator.client_url(hub)
    proc = run_python(f"""
        from webpubsub_client import WebPubSubClient
        client = WebPubSubClient({url!r})
        client.subscribe("stopped", lambda: print("stopped", flush=True))
        client.subscribe("group-message", lambda m: None)
        client.open()
        client.join_group("g")
        print("opened", flush=True)
        # no close(): the atexit hook stops and frees the client
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["opened", "stopped"]
    wait_until(lambda: emulator.connections(hub) == [], what="connection closed by the exit hook")


def test_open_aio_client_at_interpreter_exit(emulator, hub):
    url = emulator.client_url(hub)
    proc = run_python(f"""
        import asyncio
        from webpubsub_client.aio import WebPubSubClient
        client = WebPubSubClient({url!r})
        async def main():
            await client.open()
            await client.join_group("g")
            print("opened", flush=True)
        asyncio.run(main())
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["opened"]
    wait_until(lambda: emulator.connections(hub) == [], what="connection closed by the exit hook")


def test_unreferenced_client_is_freed(emulator, hub):
    client = WebPubSubClient(emulator.client_url(hub))
    client.open()
    assert len(emulator.connections(hub)) == 1
    del client
    gc.collect()
    wait_until(lambda: emulator.connections(hub) == [], what="connection closed by the finalizer")


def test_close_from_inside_a_callback(emulator, hub):
    client = WebPubSubClient(emulator.client_url(hub))
    stopped = threading.Event()
    closed_in_callback = threading.Event()

    def on_message(_m):
        client.close()
        closed_in_callback.set()

    client.subscribe("group-message", on_message)
    client.subscribe("stopped", stopped.set)
    client.open()
    client.join_group("g")
    client.send_to_group("g", "close please", "text", ack=False)  # an acked send could be cancelled by the close
    assert closed_in_callback.wait(WAIT)
    assert stopped.wait(WAIT)
    assert not client.is_connected()


def test_subscribe_from_inside_a_callback(emulator, hub, recorder):
    client = WebPubSubClient(emulator.client_url(hub))

    def first(m):
        client.unsubscribe("group-message", first)
        client.subscribe("group-message", lambda m2: recorder.add(m2.data))

    client.subscribe("group-message", first)
    with client:
        client.join_group("g")
        client.send_to_group("g", "one", "text")
        client.send_to_group("g", "two", "text")
        assert recorder.wait_count(1) == ["two"]


def test_join_group_from_inside_connected(emulator, hub, recorder):
    client = WebPubSubClient(emulator.client_url(hub))
    joined = threading.Event()
    state = []

    def on_connected(e):
        state.append(client.is_connected())
        state.append(client.connection_id == e.connection_id)
        client.join_group("from-connected")
        joined.set()

    client.subscribe("connected", on_connected)
    client.subscribe("group-message", lambda m: recorder.add(m.data))
    with client:
        assert joined.wait(WAIT)
        client.send_to_group("from-connected", "hello", "text")
        assert recorder.wait_count(1) == ["hello"]
    assert state == [True, True]


def test_fork_inherited_client_fails_clearly_new_client_works(emulator, hub):
    url = emulator.client_url(hub)
    proc = run_python(f"""
        import os
        from webpubsub_client import WebPubSubClient, SendMessageError
        client = WebPubSubClient({url!r})
        client.open()
        client.join_group("g")
        pid = os.fork()
        if pid == 0:
            try:
                client.send_to_group("g", "from child", "text")
                print("inherited-ok", flush=True)
            except SendMessageError as e:
                print("inherited", e.error_detail.name, flush=True)
            fresh = WebPubSubClient({url!r})
            fresh.open()
            fresh.join_group("child")
            fresh.close()
            print("fresh-ok", flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        client.send_to_group("g", "from parent", "text")
        client.close()
        print("parent-ok", status, flush=True)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["inherited WPS_ERR_FORKED", "fresh-ok", "parent-ok 0"]
