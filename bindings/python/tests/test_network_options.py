"""Network options: unlimited jittered reconnects, the URL provider timeout, proxies of every
kind (a real SOCKS5 proxy, microsocks, when installed) and client certificate files."""

import shutil
import socket
import subprocess
import threading
import time

import pytest
from conftest import WAIT
from webpubsub_client import OpenClientError, WebPubSubClient, WebPubSubClientCredential


def test_option_values_are_checked_at_construction(emulator, hub):
    url = emulator.client_url(hub)
    with pytest.raises(ValueError, match="0..100"):
        WebPubSubClient(url, reconnect_retry_jitter=101)
    with pytest.raises(ValueError, match="url_provider_timeout"):
        WebPubSubClient(url, url_provider_timeout=0)
    with pytest.raises(ValueError, match="/nonexistent/client.pem"):
        WebPubSubClient(url, client_cert=("/nonexistent/client.pem", "/nonexistent/client.key"))
    with pytest.raises(ValueError, match="pair"):
        WebPubSubClient(url, client_cert="/only/one.pem")
    for proxy in ("http://u:p@127.0.0.1:3128", "https://p.example", "socks5://127.0.0.1:1", "socks5h://p:1", ""):
        WebPubSubClient(url, proxy=proxy)


def test_unlimited_jittered_reconnects_outlast_failures(emulator, hub):
    calls = []
    good = emulator.client_url(hub)

    def provider():
        calls.append(time.monotonic())
        if 2 <= len(calls) < 2 + 8:
            raise RuntimeError("token service down")
        return good

    client = WebPubSubClient(
        WebPubSubClientCredential(provider),
        reconnect_retry_total=None,
        reconnect_retry_backoff_factor=0.05,
        reconnect_retry_backoff_max=0.05,
        reconnect_retry_jitter=50,
    )
    ids = []
    two = threading.Event()
    client.subscribe("connected", lambda e: (ids.append(e.connection_id), len(ids) == 2 and two.set()))
    with client:
        emulator.expire(hub, client.connection_id)
        assert two.wait(WAIT), f"{len(calls)} provider calls"
    assert len(calls) == 10
    gaps = [b - a for a, b in zip(calls[2:], calls[3:])]
    assert min(gaps) >= 0.024, gaps  # never shorter than (1 - 50 %) of the 50 ms delay


def test_a_hung_provider_fails_open_within_its_timeout(emulator, hub):
    gate = threading.Event()

    def provider():
        gate.wait(WAIT)
        return emulator.client_url(hub)

    client = WebPubSubClient(
        WebPubSubClientCredential(provider), url_provider_timeout=0.3, reconnect_retry_total=0, start_timeout=10
    )
    t0 = time.monotonic()
    with pytest.raises(OpenClientError):
        client.open()
    assert time.monotonic() - t0 < 2.5
    gate.set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("microsocks") is None, reason="microsocks is not installed (scripts/setup.sh)")
def test_socks5_proxy_with_credentials(emulator, hub, recorder):
    port = _free_port()
    proc = subprocess.Popen(["microsocks", "-i", "127.0.0.1", "-p", str(port), "-u", "py", "-P", "s3cret"])
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "microsocks does not listen"
                time.sleep(0.02)
        url = emulator.client_url(hub).replace("127.0.0.1", "localhost")
        client = WebPubSubClient(url, proxy=f"socks5h://py:s3cret@127.0.0.1:{port}")
        client.subscribe("group-message", lambda m: recorder.add(m.data))
        with client:
            client.join_group("g")
            client.send_to_group("g", "via socks", "text")
            recorder.wait_for(lambda items: "via socks" in items)
        refused = WebPubSubClient(url, proxy=f"socks5://py:wrong@127.0.0.1:{port}", reconnect_retry_total=0)
        with pytest.raises(OpenClientError):
            refused.open()
    finally:
        proc.kill()
        proc.wait()


def _openssl(cwd, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(cwd, name: str) -> None:
    _openssl(cwd, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def _make_leaf(cwd, ca: str, name: str, usage: str) -> None:
    names = "subjectAltName=DNS:localhost,IP:127.0.0.1\n" if usage == "serverAuth" else ""
    (cwd / f"{name}.cnf").write_text(f"{names}basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n")
    _openssl(cwd, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
    _openssl(cwd, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.cnf")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command makes the test certificates")
def test_mutual_tls_with_the_emulator(tmp_path, hub):
    from conftest import start_emulator, stop_emulator

    _make_ca(tmp_path, "ca")
    _make_leaf(tmp_path, "ca", "server", "serverAuth")
    _make_ca(tmp_path, "client-ca")
    _make_leaf(tmp_path, "client-ca", "client", "clientAuth")
    emu = start_emulator(
        "--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key"),
        "--tls-client-ca", str(tmp_path / "client-ca.pem"),
    )
    try:
        url = emu.client_url(hub)
        assert url.startswith("wss://"), url
        ca = str(tmp_path / "ca.pem")
        cert = (str(tmp_path / "client.pem"), str(tmp_path / "client.key"))
        client = WebPubSubClient(url, ca_file=ca, client_cert=cert)
        with client:
            client.join_group("g")
        without = WebPubSubClient(url, ca_file=ca, reconnect_retry_total=0)
        with pytest.raises(OpenClientError) as err:
            without.open()
        assert "client certificate" in str(err.value), str(err.value)
    finally:
        stop_emulator(emu)
