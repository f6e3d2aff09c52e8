#!/usr/bin/env bash
# Quick start: builds Caddy with group_join and the example membership
# backend, starts the backend and Caddy (examples/Caddyfile) on localhost,
# and prints a freshly minted invite, an access token and a curl to try.
# Ctrl-C stops everything. Needs only Go.
#
# Environment (all optional):
#   GROUP_JOIN_KEY     root key (default: a random one, new every run)
#   GROUP_JOIN_PORT    port Caddy serves on            (default 8080)
#   BACKEND_PORT       port of the example backend     (default 8081)
#   GROUP_JOIN_ADMIN   Caddy's admin endpoint          (default localhost:2019)
set -euo pipefail

cd "$(dirname "$0")/.."

GROUP_JOIN_PORT=${GROUP_JOIN_PORT:-8080}
BACKEND_PORT=${BACKEND_PORT:-8081}
GROUP_JOIN_ADMIN=${GROUP_JOIN_ADMIN:-localhost:2019}
GROUP_JOIN_BACKEND=127.0.0.1:$BACKEND_PORT
export GROUP_JOIN_PORT GROUP_JOIN_ADMIN GROUP_JOIN_BACKEND

if ! command -v go >/dev/null 2>&1; then
	echo "quickstart: Go is needed (https://go.dev/dl/)" >&2
	exit 1
fi

if [ -z "${GROUP_JOIN_KEY:-}" ]; then
	GROUP_JOIN_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
	key_note="a random key, new for this run (set GROUP_JOIN_KEY to choose one)"
else
	key_note="the key in \$GROUP_JOIN_KEY"
fi
export GROUP_JOIN_KEY

work=$(mktemp -d "${TMPDIR:-/tmp}/caddy-groupjoin-quickstart.XXXXXX")
backend_pid=
caddy_pid=

cleanup() {
	trap - EXIT INT TERM
	[ -n "$caddy_pid" ] && kill "$caddy_pid" 2>/dev/null && wait "$caddy_pid" 2>/dev/null
	[ -n "$backend_pid" ] && kill "$backend_pid" 2>/dev/null && wait "$backend_pid" 2>/dev/null
	rm -rf "$work"
	return 0
}
trap cleanup EXIT
trap 'echo; echo "quickstart: stopping"; exit 0' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$GROUP_JOIN_PORT" "$BACKEND_PORT"; do
	if port_busy "$port"; then
		echo "quickstart: port $port is in use; choose others, e.g." >&2
		echo "  GROUP_JOIN_PORT=9080 BACKEND_PORT=9081 GROUP_JOIN_ADMIN=localhost:9019 $0" >&2
		exit 1
	fi
done

echo "==> Building Caddy with group_join and the example backend (the first build takes a minute or two)"
go build -o "$work/bin/caddy" ./cmd/caddy
# The backend is its own Go module (SQLite stays out of the plugin's).
go build -C examples/backend -o "$work/bin/backend" .

echo "==> Starting the example membership backend on $GROUP_JOIN_BACKEND (log: $work/backend.log)"
"$work/bin/backend" -listen "$GROUP_JOIN_BACKEND" -groups developers,operators >"$work/backend.out" 2>"$work/backend.log" &
backend_pid=$!
for _ in $(seq 100); do
	grep -q "listening on" "$work/backend.out" 2>/dev/null && break
	if ! kill -0 "$backend_pid" 2>/dev/null; then
		echo "quickstart: the backend did not start:" >&2
		cat "$work/backend.log" >&2
		exit 1
	fi
	sleep 0.1
done

# The CLI reads the key from $GROUP_JOIN_KEY; the file lets you mint more
# from another terminal without the key ever being printed.
(umask 077 && printf '%s' "$GROUP_JOIN_KEY" >"$work/key")

echo "==> Minting an invite to group 'developers' (from bob) and an access token for 'alice'"
invite=$("$work/bin/caddy" group-join mint invite --group developers --inviter bob --ttl 1h)
access=$("$work/bin/caddy" group-join mint access --user alice --ttl 1h)

echo "==> Starting Caddy with examples/Caddyfile on 127.0.0.1:$GROUP_JOIN_PORT"
# Caddy's own state (autosaved config) goes to the temporary directory too.
XDG_DATA_HOME="$work" XDG_CONFIG_HOME="$work" \
	"$work/bin/caddy" run --config examples/Caddyfile --adapter caddyfile &
caddy_pid=$!
for _ in $(seq 200); do
	port_busy "$GROUP_JOIN_PORT" && break
	if ! kill -0 "$caddy_pid" 2>/dev/null; then
		wait "$caddy_pid" || true
		caddy_pid=
		echo "quickstart: Caddy did not start (see its log above)" >&2
		exit 1
	fi
	sleep 0.1
done

cat <<EOF

================================================================================
group_join is running on http://127.0.0.1:$GROUP_JOIN_PORT in front of the
example backend on http://$GROUP_JOIN_BACKEND. Key: $key_note.

Invite (group developers, from bob, valid 1 hour):
$invite

Access token (user alice, valid 1 hour):
$access

Join as alice — paste this into another terminal:

curl -i http://127.0.0.1:$GROUP_JOIN_PORT/user/groups/join \\
  -H 'X-Auth-Token: $access' \\
  -H 'Content-Type: application/json' \\
  -d '{"token": "$invite"}'

Expect:  HTTP/1.1 201 Created  with  Location: /user/groups/developers
Again:   HTTP/1.1 409 Conflict  {"error":"already_member",...}
Members: curl http://$GROUP_JOIN_BACKEND/groups/developers/members   -> ["alice"]

Mint more:  $work/bin/caddy group-join mint invite --group operators --inviter bob --key-file $work/key
Other joins the example backend serves, with the same access token:
  a space:   --type userJoinSpace --space datasets       POST /user/spaces/join
  a group:   --type groupJoinGroup --group developers    POST /groups/operators/parents/join
             (alice holds group_add_parent in operators; the backend checks it)
Inspect:    $work/bin/caddy group-join inspect --key-file $work/key '<token>'
Ctrl-C stops Caddy and the backend and removes $work.
================================================================================

EOF

status=0
wait "$caddy_pid" || status=$?
caddy_pid=
exit "$status"
