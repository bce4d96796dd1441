"""Client for the emulator's fault-injection routes (``/_emulator/...``).

Requests carry ``Authorization: Bearer <JWT>`` signed (HS256) with the access key, ``aud`` = the
request URL, like the data-plane REST API.
"""

import json
import time
import urllib.parse
import urllib.request

import jwt


def parse_connection_string(connection_string):
    parts = {}
    for segment in connection_string.split(";"):
        if not segment.strip():
            continue
        key, _, value = segment.partition("=")
        parts[key.strip().lower()] = value.strip()
    return parts["endpoint"].rstrip("/"), parts["accesskey"]


class EmulatorAdmin:
    def __init__(self, connection_string, timeout_s=10.0):
        self.endpoint, self.access_key = parse_connection_string(connection_string)
        self.timeout_s = timeout_s

    def _request(self, method, path, query=None):
        url = self.endpoint + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        token = jwt.encode(
            {"aud": url, "exp": int(time.time()) + 300}, self.access_key, algorithm="HS256"
        )
        request = urllib.request.Request(
            url, method=method, headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            body = response.read()
            return response.status, body

    @staticmethod
    def _quote(value):
        return urllib.parse.quote(value, safe="")

    def connections(self, hub):
        status, body = self._request("GET", f"/_emulator/hubs/{self._quote(hub)}/connections")
        assert status == 200, status
        return json.loads(body)

    def drop(self, hub, connection_id):
        """Cut the TCP connection; the session stays recoverable."""
        return self._action(hub, connection_id, ":drop")

    def close(self, hub, connection_id, code, reason):
        return self._action(hub, connection_id, ":close", {"code": str(code), "reason": reason})

    def expire(self, hub, connection_id):
        """Forget the session and drop the transport; the next recovery gets 1008."""
        return self._action(hub, connection_id, ":expire")

    def _action(self, hub, connection_id, action, query=None):
        path = f"/_emulator/hubs/{self._quote(hub)}/connections/{self._quote(connection_id)}/{action}"
        status, _ = self._request("POST", path, query)
        assert 200 <= status < 300, f"{action} answered {status}"
        return status
