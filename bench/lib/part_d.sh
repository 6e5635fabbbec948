# Part D of bench/run: D_SOCKETS idle sockets on this one box. Sourced; uses the settings and
# helpers of bench/run, common.sh and parts.sh.
#
# No process may hold more than $FD_LIMIT files (20,000 here), so the sockets are spread:
# - D_PROCS sidecars on one port (SO_REUSEPORT, the sidecar's --reuse-port, on by default): the
#   kernel spreads new connections over them. Enough of them that when one is killed its
#   clients fit on the others: 14,000 sockets each on average even then, because the kernel's
#   spread of the reconnects is uneven (one process took 4,000 more than its share).
# - several loadgens, each under 15,000 sockets, their own users (prefix d<k>u, 5 sockets a
#   user) and their own writers (D_RATE split between them), binding their sockets to
#   127.0.0.1-127.0.0.<D_SOURCES> round robin: each loopback address has its own ephemeral
#   ports to the one destination, so 100k connections need no widened port range.
# Then: connect time and RSS; D_RATE changes/s with latency and nothing lost; the same with one
# sidecar killed (SIGKILL) a third into the run and started again at once: its clients
# reconnect 0.3-0.6 s after their drop (to the others, or to it once it is back) with their
# last offset, and must resume with nothing lost.

D_PER_PROC=14000
D_PER_LOADGEN=15000
D_PER_USER=5
D_RECONNECT_MS=300
D_DRAIN=15       # seconds after a run's last commit for its deliveries to come in
D_KILL_DRAIN=90  # the same with the kill: the dropped clients must be back and caught up

# A port nothing listens on, below the ephemeral range (so that no client socket can hold it).
d_free_port() {
  local p
  for ((p = 9100 + RANDOM % 800; ; p++)); do
    ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
}

# A sidecar on the shared port, with its own admin address (/readyz and /metrics of that one
# process: on the shared port any of them may answer).
d_start() {  # d_start K PORT ADMIN_PORT LOG
  local name=d$1 i code=""
  MEMBERSHIP_NOTIFIER_JWT_SECRET=$JWT_SECRET "$SIDECAR" serve --database-url "$(conninfo d)" \
    --listen "127.0.0.1:$2" --reuse-port true --admin-listen "127.0.0.1:$3" --max-connections "$D_MAX_CONN" \
    --max-unauthenticated 1000 --max-unauthenticated-per-address 1000 --log-level warn "${SIDECAR_ARGS[@]}" >"$4" 2>&1 &
  SRV_PID[$name]=$!
  SRV_PORT[$name]=$2
  D_ADMIN[$1]=$3
  for ((i = 0; i < 600; i++)); do
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$3/readyz") || true
    [[ $code == 200 ]] && return 0
    kill -0 "${SRV_PID[$name]}" 2>/dev/null || die "sidecar $name exited: $(tail -5 "$4")"
    sleep 0.1
  done
  die "sidecar $name not ready (/readyz: $code): $(tail -5 "$4")"
}

d_rss_total() {
  local k t=0
  for ((k = 0; k < D_NPROC; k++)); do t=$((t + $(rss_kb "${SRV_PID[d$k]}"))); done
  echo "$t"
}
d_ticks_total() {  # CPU ticks of every sidecar process
  local k
  for ((k = 0; k < D_NPROC; k++)); do sed 's/.*) //' "/proc/${SRV_PID[d$k]}/stat" 2>/dev/null; done |
    awk '{ t += $12 + $13 } END { print t + 0 }'
}
d_sessions() {  # "s0 s1 ..." authenticated sessions per sidecar
  local k out=""
  for ((k = 0; k < D_NPROC; k++)); do
    out+="$(fetch_metric_port "${D_ADMIN[$k]}" membership_notifier_sessions) "
  done
  echo "${out% }"
}
d_reads_total() {  # log reads of every sidecar so far
  local k t=0
  for ((k = 0; k < D_NPROC; k++)); do t=$((t + $(fetch_metric_port "${D_ADMIN[$k]}" membership_notifier_db_reads_total))); done
  echo "$t"
}
fetch_metric_port() {  # fetch_metric_port PORT NAME
  fetch_metrics "$1" | awk -v n="$2" '$1 == n { printf "%d", $2 }'
}

# p50 p99 p99.9 max count of the latencies (µs, 3rd column) of delivery files.
d_percentiles() {
  tail -q -n +2 "$@" | cut -d, -f3 | sort -g |
    awk '{ a[NR] = $1 } END { if (!NR) { print "nan nan nan nan 0"; exit }
           split("0.5 0.99 0.999", q, " ")
           for (i = 1; i <= 3; i++) { r = int(q[i] * NR); if (r < q[i] * NR) r++; if (r < 1) r = 1; printf "%s ", a[r] }
           print a[NR], NR }'
}

# The same command to every loadgen at once; the answers, one a line, in loadgen order.
d_all() {  # d_all TIMEOUT COMMAND...
  local t=$1 k
  shift
  for ((k = 0; k < D_NLG; k++)); do lg_send "dl$k" "$@"; done
  for ((k = 0; k < D_NLG; k++)); do lg_recv "dl$k" "$t"; echo; done
}
d_sum() {  # d_sum KEY LINES: the sum of KEY over answer lines
  local line t=0
  while IFS= read -r line; do
    [[ -n $line ]] && t=$(awk -v a="$t" -v b="$(kv "$line" "$1")" 'BEGIN { print a + b }')
  done <<<"$2"
  echo "$t"
}
d_max() {
  local line t=0
  while IFS= read -r line; do
    [[ -n $line ]] && t=$(awk -v a="$t" -v b="$(kv "$line" "$1")" 'BEGIN { print (b > a ? b : a) }')
  done <<<"$2"
  echo "$t"
}

# One timed run on every loadgen together; with KILL, sidecar 1 is killed a third of the way in
# and started again. A delivery not in within the drain after the last commit counts as lost
# (the loadgen stops recording then; the drain ends early once everything is in). Sets D_RES (the answers), D_LAT ("p50 p99 p999 max n"), D_CPU (the
# sidecars' CPU %, all together) and D_CPU_PG.
d_run() {  # d_run TAG [kill]
  local tag=$1 per_lg t0 t1 c0 c1 k drain=$D_DRAIN
  [[ ${2:-} == kill ]] && drain=$D_KILL_DRAIN
  per_lg=$(awk -v r="$D_RATE" -v n="$D_NLG" 'BEGIN { printf "%.2f", r / n }')
  c0=$(d_ticks_total) t0=$(date +%s.%N) D_READS0=$(d_reads_total)
  for ((k = 0; k < D_NLG; k++)); do
    lg_send "dl$k" run tag="$tag" rate="$per_lg" secs="$D_SECS" writers=2 drain="$drain"
  done
  if [[ ${2:-} == kill ]]; then
    sleep "$(awk -v s="$D_SECS" 'BEGIN { print s / 3 }')"
    D_KILLED_HELD=$(fetch_metric_port "${D_ADMIN[1]}" membership_notifier_sessions)
    log "D: killing sidecar d1 (pid ${SRV_PID[d1]}, $D_KILLED_HELD sessions) and starting it again"
    D_KILL_T=$(date +%s.%N)
    kill -KILL "${SRV_PID[d1]}"
    wait "${SRV_PID[d1]}" 2>/dev/null || true
    d_start 1 "$D_PORT" "$(d_free_port)" "$OUT/d/sidecar-1-restarted.log"
    D_RESTART_S=$(awk -v a="$D_KILL_T" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  fi
  D_RES=""
  for ((k = 0; k < D_NLG; k++)); do D_RES+="$(lg_recv "dl$k" $((D_SECS * 3 + drain + 240)))"$'\n'; done
  c1=$(d_ticks_total) t1=$(date +%s.%N)
  D_READS_PER_S=$(awk -v r=$(($(d_reads_total) - D_READS0)) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", r / (b - a) }')
  D_CPU=$(awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
    'BEGIN { printf "%.1f", 100 * c / hz / s }')
  D_CPU_PG=$(kv "$(head -1 <<<"$D_RES")" cpu_pg)
  D_LAT=$(d_percentiles "$OUT"/d/lg*/"$tag".deliveries.csv)
}

part_d() {
  local n=$D_SOCKETS k i rss0 rss1 t0 conn ok failed srcs="" lines st
  declare -gA D_ADMIN=()
  D_NPROC=$D_PROCS
  ((D_NPROC > 0)) || D_NPROC=$(((n + D_PER_PROC - 1) / D_PER_PROC + 1))
  ((D_NPROC >= 2)) || D_NPROC=2
  D_NLG=$(((n + D_PER_LOADGEN - 1) / D_PER_LOADGEN))
  # What each sidecar may hold: under the fd limit with the unauthenticated headroom and the
  # sidecar's own reserve (it refuses to start otherwise).
  D_MAX_CONN=$((FD_LIMIT - 1000 - 64 - 128 - 200))
  ((n / (D_NPROC - 1) < D_MAX_CONN)) || log "warning: $n sockets on $((D_NPROC - 1)) sidecars after the kill exceed $D_MAX_CONN each"
  for ((i = 1; i <= D_SOURCES; i++)); do srcs+=${srcs:+,}127.0.0.$i; done
  mkdir -p "$OUT/d"
  foreign_start

  # The kernel: enough ephemeral ports per source address (reconnects included), a listen
  # backlog for the connect waves, conntrack entries when the module is loaded.
  local range need
  read -r -a range <<<"$(sysctl -n net.ipv4.ip_local_port_range)"
  need=$((n * 3 / 2 / D_SOURCES))
  ((range[1] - range[0] >= need)) || sysctl_raise net.ipv4.ip_local_port_range "10000 65000"
  (($(sysctl -n net.core.somaxconn) >= 4096)) || sysctl_raise net.core.somaxconn 4096
  (($(sysctl -n net.ipv4.tcp_max_syn_backlog) >= 4096)) || sysctl_raise net.ipv4.tcp_max_syn_backlog 4096
  if [[ -r /proc/sys/net/netfilter/nf_conntrack_max ]] && (($(sysctl -n net.netfilter.nf_conntrack_max) < 3 * n)); then
    sysctl_raise net.netfilter.nf_conntrack_max $((3 * n))
  fi
  (($(sysctl -n fs.file-max) >= 3 * n)) || sysctl_raise fs.file-max $((3 * n))

  log "D: $D_NPROC sidecars on one port (--reuse-port), up to $D_MAX_CONN sockets each"
  make_db d ours "$A_SYNC"
  D_PORT=$(d_free_port)
  for ((k = 0; k < D_NPROC; k++)); do
    d_start "$k" "$D_PORT" "$(d_free_port)" "$OUT/d/sidecar-$k.log"
  done
  sleep 1
  rss0=$(d_rss_total)

  log "D: $n sockets from $D_NLG loadgens, sources $srcs"
  t0=$(date +%s.%N)
  for ((k = 0; k < D_NLG; k++)); do
    local share=$(((n * (k + 1)) / D_NLG - (n * k) / D_NLG))
    lg_spawn "dl$k" "$D_PORT" ws "$share" $(((share + D_PER_USER - 1) / D_PER_USER)) d "$OUT/d/lg$k" 0 \
      --user-prefix "d${k}u" --source "$srcs" --reconnect-ms "$D_RECONNECT_MS"
  done
  ok=0 failed=0 lines=""
  for ((k = 0; k < D_NLG; k++)); do
    lg_connected "dl$k"
    ok=$((ok + $(kv "${LG_CONNECTED[dl$k]}" ok)))
    failed=$((failed + $(kv "${LG_CONNECTED[dl$k]}" failed)))
    lines+="${LG_CONNECTED[dl$k]}"$'\n'
  done
  conn=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  log "D: $ok connected, $failed failed, in $conn s; sessions per sidecar: $(d_sessions)"
  local first_error
  first_error=$(grep -o 'first_error="[^"]\+"' <<<"$lines" | head -1 | cut -c14- | tr -d '"') || true
  sleep 5
  rss1=$(d_rss_total)
  local sessions_before
  sessions_before=$(d_sessions)

  log "D: $D_RATE changes/s for $D_SECS s"
  d_run d1
  local steady_res=$D_RES steady_lat=$D_LAT steady_cpu=$D_CPU steady_pg=$D_CPU_PG steady_reads=$D_READS_PER_S
  log "D: steady: p50/p99/p99.9/max/n (µs) $steady_lat, lost $(d_sum lost "$steady_res")"

  log "D: $D_RATE changes/s for $D_SECS s, sidecar d1 killed at $((D_SECS / 3)) s and restarted"
  local before_stats after_stats
  before_stats=$(d_all 30 stats)
  d_run d2 kill
  local kill_res=$D_RES kill_lat=$D_LAT
  # Every dropped socket back before the figures are read (or 60 s more).
  for ((i = 0; i < 60; i++)); do
    after_stats=$(d_all 30 stats)
    (($(d_sum ready "$after_stats") >= ok)) && break
    sleep 1
  done
  local sessions_after
  sessions_after=$(d_sessions)
  log "D: kill run: p50/p99/p99.9/max/n (µs) $kill_lat, lost $(d_sum lost "$kill_res"); sessions per sidecar now $sessions_after"
  printf '%s\n' "$lines" "$steady_res" "$before_stats" "$kill_res" "$after_stats" >"$OUT/d/summary.txt"
  for ((k = 0; k < D_NPROC; k++)); do fetch_metrics "${D_ADMIN[$k]}" >"$OUT/d/metrics-$k.txt"; done
  for ((k = 0; k < D_NLG; k++)); do lg_stop "dl$k"; done
  for ((k = 0; k < D_NPROC; k++)); do stop_server "d$k"; done
  sysctl_restore

  local dropped recovered resnap retry back lost_steady lost_kill
  dropped=$(($(d_sum disconnects "$after_stats") - $(d_sum disconnects "$before_stats")))
  recovered=$(($(d_sum recovered "$after_stats") - $(d_sum recovered "$before_stats")))
  resnap=$(($(d_sum resnapshots "$after_stats") - $(d_sum resnapshots "$before_stats")))
  retry=$(($(d_sum retry_errors "$after_stats") - $(d_sum retry_errors "$before_stats")))
  back=$(d_max back_ms "$after_stats")
  local retry_error
  retry_error=$(grep -o 'first_retry_error="[^"]\+"' <<<"$after_stats" | head -1 | cut -c20- | tr -d '"') || true
  lost_steady="$(d_sum lost "$steady_res") of $(d_sum expected "$steady_res")"
  lost_kill="$(d_sum lost "$kill_res") of $(d_sum expected "$kill_res")"
  local dups
  dups=$(($(d_sum dup "$steady_res") + $(d_sum dup "$kill_res")))
  read -r -a sl <<<"$steady_lat"
  read -r -a kl <<<"$kill_lat"
  {
    echo "## D. $n idle sockets on one box: $D_NPROC sidecars on one port (--reuse-port), $D_NLG load generators from $D_SOURCES loopback addresses"
    echo
    echo "Each process under $FD_LIMIT open files: every sidecar at most $D_MAX_CONN sockets (--max-connections), every load generator at most $D_PER_LOADGEN. $D_PER_USER sockets a user; each load generator writes for its own users (synchronous_commit=$A_SYNC). The kill: sidecar d1 gets SIGKILL a third into the second run and is started again at once; its clients come back $D_RECONNECT_MS–$((2 * D_RECONNECT_MS)) ms after their drop with their last offset."
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| sockets connected | $ok of $n ($failed failed${first_error:+: $first_error}) |"
    echo "| connect time | $conn s (all load generators at once, $((D_NLG * 200)) handshakes in flight) |"
    echo "| RSS, all sidecars: idle → connected | $(mib "$rss0") → $(mib "$rss1") MiB |"
    echo "| RSS per idle authenticated socket | $(awk -v a="$rss0" -v b="$rss1" -v n="$ok" 'BEGIN { printf "%.1f", n ? (b - a) / n : 0 }') KiB |"
    echo "| sessions per sidecar | $sessions_before |"
    echo "| $D_RATE changes/s for $D_SECS s: p50 / p99 / p99.9 / max ms | $(ms "${sl[0]}") / $(ms "${sl[1]}") / $(ms "${sl[2]}") / $(ms "${sl[3]}") ($(d_sum rate "$steady_res") changes/s reached) |"
    echo "| lost | $lost_steady |"
    echo "| CPU %: all sidecars / PostgreSQL | $steady_cpu / $steady_pg |"
    echo "| log reads/s, all sidecars together | $steady_reads (each sidecar reads every change; the drain's seconds included) |"
    echo "| with sidecar d1 killed: sockets dropped | $dropped (it held $D_KILLED_HELD sessions; started again in $D_RESTART_S s) |"
    echo "| back: resumed / with a snapshot / failed attempts (retried) | $recovered / $resnap / $retry${retry_error:+ (the first: $retry_error)} |"
    echo "| first drop → last socket back | $back ms |"
    echo "| sessions per sidecar after | $sessions_after |"
    echo "| that run: p50 / p99 / p99.9 / max ms | $(ms "${kl[0]}") / $(ms "${kl[1]}") / $(ms "${kl[2]}") / $(ms "${kl[3]}") |"
    echo "| sockets not back at the end | $((ok - $(d_sum ready "$after_stats"))) |"
    echo "| lost | $lost_kill |"
    echo
    echo "Lost: probe deliveries expected (every ready socket of the change's user at the start of the run) and not received within $D_DRAIN s of the run's last commit ($D_KILL_DRAIN s in the run with the kill: a client still reconnecting then counts its missed events as lost); a socket that came back with a snapshot instead of its missed events loses them. Duplicates (a frame again after a resume, allowed by the protocol): $dups. Other processes on the machine used about $(foreign_pct)% CPU (100% = one core) on average during part D."
    echo
  } >>"$OUT/report.md"
}
