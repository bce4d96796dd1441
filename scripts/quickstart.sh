#!/usr/bin/env bash
# Builds the library, the emulator and the `wps` CLI (target/release/wps-emulator and wps),
# starts a local wps-emulator, mints a client access URL for it and runs
# examples/c/quickstart.c ("join group and send a message to the group").
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p webpubsub-client -p webpubsub-emulator -p wps-cli
out=target/quickstart
mkdir -p "$out/lib"
ln -sf "$PWD/target/release/libwebpubsub_client.so" "$out/lib/libwebpubsub_client.so"
ln -sf "$PWD/target/release/libwebpubsub_client.so" "$out/lib/libwebpubsub_client.so.0"
cc -std=c11 -Wall -Wextra -O2 -I include examples/c/quickstart.c -o "$out/quickstart" \
  -L "$out/lib" -lwebpubsub_client -lpthread -Wl,-rpath,"$PWD/$out/lib"

# Start the emulator on a free port; its first stdout line is the connection string.
exec 3< <(exec target/release/wps-emulator --port 0)
emulator_pid=$!
trap 'kill "$emulator_pid" 2>/dev/null || true' EXIT
read -r -t 20 -u 3 connection_string
echo "emulator: ${connection_string%%;AccessKey*}"

# A client access URL with the roles the quickstart needs (HS256 JWT signed with the access key).
export WPS_TEST_CONNSTR=$connection_string
url=$(python3 tests/c/wps_tool.py url Hub1 --user quickstart-user \
  --role webpubsub.joinLeaveGroup --role webpubsub.sendToGroup)

"$out/quickstart" "$url"
