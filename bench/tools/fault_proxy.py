"""``wps-fault-proxy`` in its own process, for the WAN profile: added latency and a bandwidth
limit between the bench programs and the emulator."""

import json
import subprocess
import threading
import urllib.request


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream`` (host:port); ``listen`` is its address."""

    def __init__(self, binary: str, upstream: str, log_path: str, prefix=()):
        self._log = open(log_path, "w")
        args = list(prefix) + [binary, "--upstream", upstream]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, text=True)
        line = []
        got = threading.Event()

        def read():
            line.append(self.proc.stdout.readline())
            got.set()

        threading.Thread(target=read, daemon=True).start()
        if not got.wait(30) or not line[0].startswith("listen="):
            self.stop()
            raise RuntimeError(f"wps-fault-proxy did not print its addresses: {line!r}")
        fields = dict(part.split("=", 1) for part in line[0].split())
        self.listen, self.control = fields["listen"], fields["control"]
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def set_wan(self, rtt_ms: int, bandwidth_bytes_per_sec: int):
        """Half the round trip added each way, and the bandwidth limit each way."""
        one_way = dict(latency_ms=rtt_ms // 2, bandwidth_bytes_per_sec=bandwidth_bytes_per_sec)
        body = json.dumps({"upstream": one_way, "downstream": one_way}).encode()
        request = urllib.request.Request(f"http://{self.control}/faults", data=body, method="PUT",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            if not 200 <= response.status < 300:
                raise RuntimeError(f"PUT /faults answered {response.status}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
