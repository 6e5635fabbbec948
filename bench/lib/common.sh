# Helpers for bench/run: the throwaway cluster, the servers under test, the load generator.
# Sourced, not run. Every process started here is remembered by pid and stopped by pid.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The value of key=value in a loadgen answer line ("" when absent).
kv() {
  local v
  v=$(grep -o " $2=[^ ]*" <<<" $1" | head -1) || true
  printf '%s' "${v#*=}"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---- Foreign load -----------------------------------------------------------------------------
# Others may be using this machine (builds, tests). CPU ticks of the whole machine, and of
# everything this benchmark ran: this shell's waited-for children (servers, loadgens, pgbench,
# psql, with theirs) and the cluster (postmaster, its reaped and its live backends). The
# difference over a part is what other processes took.
# Ticks of the whole machine: busy, waiting for I/O, all; machine_ticks: busy alone.
machine_split() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
machine_ticks() { machine_split | cut -d' ' -f1; }
own_ticks() {
  local mine pg live
  mine=$(sed 's/.*) //' "/proc/$$/stat" | awk '{ print $14 + $15 }')
  pg=$(sed 's/.*) //' "/proc/$POSTMASTER_PID/stat" | awk '{ print $12 + $13 + $14 + $15 }')
  live=$(cat /proc/[0-9]*/stat 2>/dev/null | sed 's/.*) //' |
    awk -v pm="$POSTMASTER_PID" '$2 == pm { t += $12 + $13 } END { print t + 0 }')
  echo $((mine + pg + live))
}
FOREIGN_T0=0 FOREIGN_M0=0 FOREIGN_O0=0
foreign_start() {
  FOREIGN_T0=$(date +%s.%N) FOREIGN_M0=$(machine_ticks) FOREIGN_O0=$(own_ticks)
}
foreign_pct() {  # CPU % (100 = one core) other processes used since foreign_start
  local m o
  m=$(machine_ticks) o=$(own_ticks)
  awk -v m=$((m - FOREIGN_M0)) -v o=$((o - FOREIGN_O0)) -v t0="$FOREIGN_T0" -v t1="$(date +%s.%N)" \
    -v hz="$(getconf CLK_TCK)" 'BEGIN { f = (m - o) / hz / (t1 - t0) * 100; printf "%.0f", f < 0 ? 0 : f }'
}
load1() { cut -d' ' -f1 /proc/loadavg; }
# WAL written (bytes, from the insert position) and WAL flushes (pg_stat_wal.wal_sync, every
# process's) since the cluster started. A backend adds its flushes to pg_stat_wal as it exits,
# and pgbench returns before its backends have: wal_after waits for them to go first.
wal_point() { psql_q postgres -At -F' ' -c "SELECT pg_current_wal_lsn() - '0/0', wal_sync FROM pg_stat_wal"; }
wal_after() {  # wal_after DB: wal_point once pgbench's sessions on DB have exited
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(psql_q postgres -At -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$1'
                                   AND application_name = 'pgbench'") == 0 ]] && break
    sleep 0.02
  done
  wal_point
}
# Ticks a sidecar has used: its process and its live database sessions (0 for a name without one).
sidecar_ticks() {  # sidecar_ticks NAME
  local pids
  [[ -n ${SRV_PID[$1]:-} ]] || { echo 0; return; }
  pids=$(psql_q postgres -At -c "SELECT pid FROM pg_stat_activity WHERE datname = 'b_$1'
                                  AND application_name LIKE 'membership-notifier %'")
  for p in ${SRV_PID[$1]} $pids; do sed 's/.*) //' "/proc/$p/stat" 2>/dev/null; done |
    awk '{ t += $12 + $13 } END { print t + 0 }'
}

# ---- PostgreSQL ---------------------------------------------------------------------------
# initdb refuses root: the cluster runs as the postgres user, in a short /tmp path (the
# socket path must fit in sun_path), with durable commits: fsync and synchronous_commit on.
# Large max_wal_size and checkpoint_timeout keep checkpoints out of the measured windows;
# each pgbench point starts with an explicit CHECKPOINT instead.
PG_DIR=""
PG_PORT=5432
POSTMASTER_PID=""

pg_start() {
  id postgres >/dev/null 2>&1 || die "no 'postgres' system user (install postgresql)"
  PG_DIR=$(mktemp -d /tmp/mnb.XXXXXX)
  chmod 755 "$PG_DIR"
  chown postgres:postgres "$PG_DIR"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 \
    --no-sync >"$PG_DIR/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$PG_DIR/initdb.log")"
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
    -o "-k $PG_DIR -p $PG_PORT -c listen_addresses= -c fsync=on -c synchronous_commit=on \
        -c full_page_writes=on -c shared_buffers=1GB -c max_wal_size=16GB -c checkpoint_timeout=1h \
        -c max_connections=200 -c log_min_messages=warning" start >/dev/null \
    || die "postgres did not start: $(tail -5 "$PG_DIR/postgres.log")"
  POSTMASTER_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
  log "postgres $("$PG_BIN/postgres" --version | awk '{print $3}') on $PG_DIR (fsync=on, synchronous_commit=on)"
}

pg_stop() {
  [[ -n $PG_DIR && -d $PG_DIR/data ]] || return 0
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  if [[ ${KEEP:-0} == 1 ]]; then log "kept $PG_DIR"; else rm -rf "$PG_DIR"; fi
  PG_DIR=""
}

conninfo() { printf 'host=%s port=%s user=postgres dbname=%s' "$PG_DIR" "$PG_PORT" "$1"; }

psql_q() {  # psql_q DB SQL...
  local db=$1
  shift
  PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$(conninfo "$db")" "$@"
}

# pgbench's one-row INSERT transactions on DB, its output to LOG; the caller checkpoints first.
pgbench_inserts() {  # pgbench_inserts DB CLIENTS SECS LOG
  pgbench -n -M prepared -c "$2" -j $(($2 < 2 ? $2 : 2)) -T "$3" -f "$BENCH/sql/insert.pgbench" \
    "$(conninfo "$1")" >"$4" 2>&1
}
pgbench_log_tps() {  # pgbench_log_tps LOG: the tps pgbench reported there
  printf '%.0f' "$(sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p' "$1")"
}
# The same after a checkpoint, so each run starts alike; fails loudly.
pgbench_tps() {  # pgbench_tps DB CLIENTS SECS LOG: prints tps
  psql_q "$1" -c CHECKPOINT
  pgbench_inserts "$@" || die "pgbench failed: $(tail -3 "$4")"
  pgbench_log_tps "$4"
}

# A fresh database with the application's table and the triggers of `kind`:
# none | ours (membership-notifier migrate up) | node (one NOTIFY per row).
# `sync` (on|off) is synchronous_commit for every session of that database.
make_db() {
  local db=$1 kind=$2 sync=${3:-on}
  psql_q postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" \
    -c "ALTER DATABASE $db SET synchronous_commit = $sync" >/dev/null || die "cannot create database $db"
  psql_q "$db" -f "$BENCH/sql/app.sql" >/dev/null || die "cannot create the application's table"
  case $kind in
    ours) "$SIDECAR" migrate up --database-url "$(conninfo "$db")" >"$OUT/migrate-$db.log" 2>&1 \
            || die "migrate up failed: $(tail -5 "$OUT/migrate-$db.log")" ;;
    node) psql_q "$db" -f "$BENCH/baseline/schema.sql" >/dev/null || die "cannot install the baseline trigger" ;;
    floor) psql_q "$db" -f "$BENCH/sql/floor.sql" >/dev/null || die "cannot install the floor trigger" ;;
    noop | least_log) psql_q "$db" -f "$BENCH/sql/$kind.sql" >/dev/null || die "cannot install the $kind trigger" ;;
    none) ;;
  esac
}

# The sidecar's /metrics text (bash's /dev/tcp: nothing to install).
fetch_metrics() {  # fetch_metrics PORT
  exec 7<>"/dev/tcp/127.0.0.1/$1" || return 0
  printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&7
  timeout 5 cat <&7 || true
  exec 7>&-
}
metric_value() { awk -v n="$2" '$1 == n { print $2 }' "$1" 2>/dev/null; }  # metric_value FILE NAME

# ---- Servers under test ---------------------------------------------------------------------
# Several may run at once (part B), each under a name: SRV_PID[name], SRV_PORT[name].
declare -A SRV_PID=() SRV_PORT=()

wait_for_port() {  # wait_for_port NAME LOGFILE
  local i port
  for ((i = 0; i < 300; i++)); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$2" 2>/dev/null | head -1 | sed 's/.*://') || true
    if [[ -n $port ]]; then
      SRV_PORT[$1]=$port
      return 0
    fi
    kill -0 "${SRV_PID[$1]}" 2>/dev/null || die "server $1 exited: $(tail -5 "$2")"
    sleep 0.1
  done
  die "server $1 did not start listening: $(tail -5 "$2")"
}

# Sockets one sidecar serves (--max-connections): under the fd limit with the handshake cap
# and the sidecar's reserve. Part A lowers the cap to hold more (19,000 sockets in one process).
SIDECAR_MAX_CONN=18000
start_sidecar() {  # start_sidecar NAME DB MODE LOG [PORT [FLAG...]]
  local extra=("${@:6}")
  MEMBERSHIP_NOTIFIER_JWT_SECRET=$JWT_SECRET "$SIDECAR" serve --database-url "$(conninfo "$2")" \
    --listen "127.0.0.1:${5:-0}" --max-connections "$SIDECAR_MAX_CONN" "${SIDECAR_LIMIT_ARGS[@]}" \
    --wake-mode "$3" "${SIDECAR_ARGS[@]}" "${extra[@]}" >"$4" 2>&1 &
  SRV_PID[$1]=$!
  wait_for_port "$1" "$4"
  local i
  local code=""
  for ((i = 0; i < 300; i++)); do
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${SRV_PORT[$1]}/readyz") || true
    [[ $code == 200 ]] && return 0
    if ! kill -0 "${SRV_PID[$1]}" 2>/dev/null; then
      wait "${SRV_PID[$1]}"
      die "sidecar $1 exited with status $? before it was ready: $(tail -5 "$4")"
    fi
    sleep 0.1
  done
  die "sidecar $1 not ready (/readyz: $code): $(tail -5 "$4")"
}

start_node() {  # start_node NAME DB LOG
  JWT_SECRET=$JWT_SECRET PGHOST=$PG_DIR PGPORT=$PG_PORT PGUSER=postgres PGDATABASE=$2 \
    node "$BENCH/baseline/gateway.js" 0 >"$3" 2>&1 &
  SRV_PID[$1]=$!
  wait_for_port "$1" "$3"
}

stop_server() {  # stop_server NAME
  local pid=${SRV_PID[$1]:-} i
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "SRV_PID[$1]" "SRV_PORT[$1]"
}

# ---- The load generator ---------------------------------------------------------------------
# Each runs as a child with a pipe each way (FIFOs), under a name like the servers; lg_cmd
# sends one command and prints its one answer line. Every line is also kept in $OUT/loadgen.log.
declare -A LG_PID=() LG_W=() LG_R=() LG_CONNECTED=()

# lg_spawn starts one and returns at once (several can connect in parallel); lg_connected
# waits for its `connected` line. Each runs with at most $FD_LIMIT open files.
lg_spawn() {  # lg_spawn NAME PORT PROTOCOL SOCKETS USERS DB RAWDIR SERVER_PID [LOADGEN_ARG...]
  local name=$1 fifo_dir w r
  fifo_dir=$(mktemp -d /tmp/mnb-lg.XXXXXX)
  mkfifo "$fifo_dir/in" "$fifo_dir/out"
  mkdir -p "$7"
  BENCH_JWT_SECRET=$JWT_SECRET "$LOADGEN" --port "$2" --protocol "$3" --sockets "$4" --users "$5" \
    --db "$(conninfo "$6")" --out "$7" --server-pid "${8:-0}" --postmaster-pid "$POSTMASTER_PID" "${@:9}" \
    <"$fifo_dir/in" >"$fifo_dir/out" 2>>"$OUT/loadgen.stderr" &
  LG_PID[$name]=$!
  exec {w}>"$fifo_dir/in"
  exec {r}<"$fifo_dir/out"
  LG_W[$name]=$w
  LG_R[$name]=$r
  rm -rf "$fifo_dir"
}

lg_connected() {  # lg_connected NAME
  local line
  IFS= read -r -t 900 -u "${LG_R[$1]}" line || die "loadgen $1 did not connect (see $OUT/loadgen.stderr)"
  LG_CONNECTED[$1]=$line
  printf '%s: %s\n' "$1" "$line" >>"$OUT/loadgen.log"
}

lg_start() {  # lg_start NAME PORT PROTOCOL SOCKETS USERS DB RAWDIR SERVER_PID [LOADGEN_ARG...]
  lg_spawn "$@"
  lg_connected "$1"
}

# lg_send and lg_recv split lg_cmd, for commands sent to several loadgens at once.
lg_send() {  # lg_send NAME COMMAND...
  local name=$1
  shift
  printf '%s\n' "$*" >&"${LG_W[$name]}"
}

lg_recv() {  # lg_recv NAME TIMEOUT_SECONDS
  local line
  IFS= read -r -t "$2" -u "${LG_R[$1]}" line || die "loadgen $1 gave no answer"
  printf '%s: %s\n' "$1" "$line" >>"$OUT/loadgen.log"
  printf '%s' "$line"
}

lg_cmd() {  # lg_cmd NAME TIMEOUT_SECONDS COMMAND...
  local name=$1 t=$2
  shift 2
  lg_send "$name" "$@"
  lg_recv "$name" "$t"
}

lg_stop() {  # lg_stop NAME
  local name=$1 w r
  [[ -n ${LG_PID[$name]:-} ]] || return 0
  w=${LG_W[$name]}
  r=${LG_R[$name]}
  printf 'quit\n' >&"$w" 2>/dev/null || true
  exec {w}>&- {r}<&-
  wait "${LG_PID[$name]}" 2>/dev/null || true
  unset "LG_PID[$name]" "LG_W[$name]" "LG_R[$name]"
}

# ---- Kernel settings ------------------------------------------------------------------------
# A part that needs more than the kernel allows (part D: 100k sockets) raises a setting for
# the run; cleanup puts back what was there.
declare -A SYSCTL_SAVED=()
sysctl_raise() {  # sysctl_raise NAME VALUE: set NAME to VALUE, remembering the old value
  local old
  old=$(sysctl -n "$1" 2>/dev/null) || { log "warning: no sysctl $1"; return 0; }
  [[ -v SYSCTL_SAVED[$1] ]] || SYSCTL_SAVED[$1]=$old
  sysctl -q -w "$1=$2" >/dev/null 2>&1 || log "warning: cannot set $1 to $2 (still $old)"
}
sysctl_restore() {
  local k
  for k in "${!SYSCTL_SAVED[@]}"; do sysctl -q -w "$k=${SYSCTL_SAVED[$k]}" >/dev/null 2>&1 || true; done
  SYSCTL_SAVED=()
}

cleanup() {
  local n
  for n in "${!LG_PID[@]}"; do kill -TERM "${LG_PID[$n]}" 2>/dev/null || true; done
  for n in "${!SRV_PID[@]}"; do stop_server "$n"; done
  pg_stop
  sysctl_restore
}
