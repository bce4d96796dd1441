"""Drop one connection through the emulator's fault API; exits 0 once the emulator cut it and
prints CLOCK_MONOTONIC in nanoseconds taken just before the request was sent (the same clock as
Rust's Instant, C's clock_gettime(CLOCK_MONOTONIC), Python's time.monotonic and node's
process.hrtime), so a bench program can time recovery from the moment of the drop.

Usage: WPS_CONNECTION_STRING=... python3 emu_drop.py HUB CONNECTION_ID
POST /_emulator/hubs/{hub}/connections/{id}/:drop with a Bearer HS256 JWT signed with the access
key, aud = the full request URL (standard library only).
"""

import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, __import__("os").path.dirname(__file__))
import emulator  # noqa: E402


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    hub, connection_id = argv[1], argv[2]
    endpoint, key = emulator.parse_connection_string(emulator.connection_string_from_env())
    quote = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731
    url = f"{endpoint}/_emulator/hubs/{quote(hub)}/connections/{quote(connection_id)}/:drop"
    request = urllib.request.Request(
        url, method="POST", headers={"Authorization": "Bearer " + emulator.rest_token(key, url)}
    )
    opener = urllib.request.build_opener()
    started_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    with opener.open(request, timeout=10) as response:
        if not 200 <= response.status < 300:
            sys.stderr.write(f"drop answered {response.status}\n")
            return 1
    print(started_ns, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
