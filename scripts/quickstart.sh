#!/usr/bin/env bash
# Builds and installs the C library with cargo-c into build/wps, builds the emulator and the
# `wps` CLI (target/release/wps-emulator and wps), starts a local wps-emulator, mints a client
# access URL for it and runs examples/c/quickstart.c ("join group and send a message to the
# group"), compiled with the commands written at the top of that file, run as written.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

cargo build --release -p webpubsub-emulator -p wps-cli
# The build commands of examples/c/quickstart.c: the comment lines between "from the
# repository root" and the line that runs ./quickstart.
commands=$(sed -n '/from the repository root/,/\.\/quickstart /p' examples/c/quickstart.c |
  sed -n 's/^ \*   //p' | grep -v '^\./quickstart ')
echo "$commands" | sed 's/^/+ /'
eval "$commands"

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

./quickstart "$url"
