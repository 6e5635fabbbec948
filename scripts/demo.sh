#!/usr/bin/env bash
# The whole thing, on this machine, in one command: installs what is missing, builds, starts a
# throwaway PostgreSQL in a temporary folder, applies the migration to a demo schema, starts
# the sidecar and a client connected as "alice" (the JavaScript client library in Node,
# examples/js-client.mjs), serves the browser example (examples/browser) and prints its
# address, then adds alice to channels and removes her again, once a second, while the client
# prints what it receives. Ctrl-C stops everything and removes the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm ci --prefix examples --no-audit --no-fund --loglevel=error   # ws, and socket.io-client for the page
build=${BUILD_DIR:-build-demo}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMN_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target membership-notifier >/dev/null
bin=$PWD/$build/membership-notifier

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/mn-demo.XXXXXX)   # short: the server's socket lives here
pids=()
as_pg() { if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  as_pg "$pgbin/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
  echo; echo "demo stopped; nothing left running"
}
# After a signal the script stops here, instead of carrying on with its loop.
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

# initdb refuses to run as root: the cluster belongs to the postgres system user.
# synchronous_commit=off: a throwaway cluster, and the times the client prints are then the
# sidecar's own, not this disk's flush time.
[[ $EUID -eq 0 ]] && chown postgres "$work"
as_pg "$pgbin/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w \
  -o "-k $work -c listen_addresses='' -p 5432 -c synchronous_commit=off" start >/dev/null
url="host=$work port=5432 user=postgres dbname=postgres"
psql() { command psql "$url" -v ON_ERROR_STOP=1 -qAt "$@"; }

psql <<'SQL'
CREATE TABLE channels (id text PRIMARY KEY, type text NOT NULL);
CREATE TABLE channel_members (
  channel_id text NOT NULL REFERENCES channels ON DELETE CASCADE,
  user_id    text NOT NULL,
  PRIMARY KEY (channel_id, user_id));
CREATE INDEX ON channel_members (user_id);  -- snapshots read a user's rows (migrate status says)
INSERT INTO channels VALUES ('general', 'public'), ('random', 'public'), ('alice-bob', 'dm');
SQL
echo "== migrate up (xType from channels.type)"
"$bin" migrate up --database-url "$url" --channels-table public.channels --xtype-column type

# The browser example's pages, from an origin of their own: the sidecar admits that origin only.
node examples/browser/serve.mjs --port 0 >"$work/web.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'serving' "$work/web.log" && break; sleep 0.1; done
web=$(sed -n 's/.*serving the browser example on \(http[^ ]*\)\/$/\1/p' "$work/web.log" | head -n 1)
[[ -n "$web" ]] || { cat "$work/web.log"; exit 1; }

secret=$(head -c 32 /dev/urandom | base64)
MEMBERSHIP_NOTIFIER_JWT_SECRET=$secret "$bin" serve --database-url "$url" --listen 127.0.0.1:0 \
  --allowed-origins "$web,${web/127.0.0.1/localhost}" >"$work/sidecar.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'caught up' "$work/sidecar.log" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/sidecar.log" | head -n 1)
[[ -n "$port" ]] || { cat "$work/sidecar.log"; exit 1; }
echo "== sidecar on 127.0.0.1:$port (log: $work/sidecar.log)"

# An HS256 token for alice, valid for an hour (what the chat backend would hand its client).
token=$(SECRET=$secret python3 - <<'PY'
import base64, hashlib, hmac, json, os, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "alice", "exp": int(time.time()) + 3600}).encode())
sig = hmac.new(os.environ["SECRET"].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(sig)}")
PY
)
echo "== alice's channels in a browser on this machine (the library, and the stock socket.io-client):"
echo "   $web/library.html#server=http://127.0.0.1:$port&token=$token"
echo "   $web/socketio.html#server=http://127.0.0.1:$port&token=$token"
echo "== client connected as alice (the JavaScript client library in Node); Ctrl-C to stop"
node examples/js-client.mjs "ws://127.0.0.1:$port/ws" "$token" &
pids+=($!)
sleep 1

step() { echo "-- $1"; psql -c "$2"; sleep 1; }
while true; do
  step "add alice to #general"  "INSERT INTO channel_members VALUES ('general', 'alice')"
  step "add bob to #general (alice hears nothing)" "INSERT INTO channel_members VALUES ('general', 'bob')"
  step "open the alice-bob DM" "INSERT INTO channel_members VALUES ('alice-bob', 'alice'), ('alice-bob', 'bob')"
  step "remove alice from #general" "DELETE FROM channel_members WHERE channel_id = 'general' AND user_id = 'alice'"
  step "delete the DM channel (cascade)" "DELETE FROM channels WHERE id = 'alice-bob'; INSERT INTO channels VALUES ('alice-bob', 'dm')"
  psql -c "DELETE FROM channel_members"
done
