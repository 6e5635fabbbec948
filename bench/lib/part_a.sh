# Part A of bench/run: delivery latency over a sweep of change rates, the sidecar against the
# usual Node design, and what one sidecar costs the database. Sourced; uses the settings and
# helpers of bench/run, common.sh and parts.sh.
#
# Each server gets its own database and A_SOCKETS sockets, connected once; then an idle window
# (A_IDLE_SECS, no writes) and the rates of A_RATE_LIST in rising order, A_SECS each. A rate the
# writers could not reach (under 80% of it: the machine's ceiling with this server on it) ends
# that server's sweep: higher ones would measure the same ceiling.

A_ROWS=()
A_KNEES=()
A_COSTS=()
A_NOTES=()
A_KNEE_P99_US=5000  # the knee: the highest rate, with every lower one, kept at p99 <= 5 ms and nothing lost

# "s18:455 s19:395" (second of the run: deliveries over 20 ms), or "none": shows whether the
# tail is spread out or one event (a GC pause, a burst of keepalive pings, a checkpoint).
slow_seconds() {  # slow_seconds DELIVERIES_CSV RATE
  local r
  r=$(awk -F, -v rate="$2" 'NR > 1 && $3 > 20000 { n[int($1 / rate)]++ } END { for (k in n) printf "s%d:%d\n", k, n[k] }' "$1" |
    sort -t: -k2 -rn | head -6 | tr '\n' ' ')
  printf '%s' "${r:-none}"
}

# Whether a rate's result passes the knee's test: the writers reached it (95%), p99 within
# the bound, nothing lost, duplicated or misrouted, no write failed.
a_passes() {  # a_passes RESULT_LINE TARGET_RATE
  local r=$1
  awk -v rate="$(kv "$r" rate)" -v target="$2" -v p99="$(kv "$r" p99_us)" -v bound="$A_KNEE_P99_US" \
      -v bad="$(($(kv "$r" lost) + $(kv "$r" dup) + $(kv "$r" misrouted) + $(kv "$r" failures)))" \
      'BEGIN { exit !(rate >= 0.95 * target && p99 != "nan" && p99 <= bound && bad == 0) }'
}

# µs of PostgreSQL CPU per change: its CPU % (100 = one core) over the changes per second.
us_per() {  # us_per CPU_PCT PER_SECOND
  awk -v c="$1" -v r="$2" 'BEGIN { if (c == "" || c == "nan" || r <= 0) print "–"; else printf "%.0f", c / 100 * 1e6 / r }'
}

a_target() {  # a_target NAME LABEL KIND(ours|node) PROTOCOL(ws|sio) MODE
  local name=$1 label=$2 kind=$3 proto=$4 mode=$5
  local db=a_${name//-/_} raw=$OUT/a/$name rss0 rss1 ok res st pid rate writers idle reached knee="" knee_open=1 broken=0 p99_1k="–"
  local lg_args=()
  mkdir -p "$raw"
  log "A: $label: database, server, $A_SOCKETS sockets"
  make_db "$db" "$kind" "$A_SYNC"
  if [[ $kind == ours ]]; then start_sidecar a "$db" "$mode" "$raw/server.log"; else start_node a "$db" "$raw/server.log"; fi
  pid=${SRV_PID[a]}
  [[ $kind == ours ]] && lg_args=(--metrics-port "${SRV_PORT[a]}")
  sleep 1
  rss0=$(rss_kb "$pid")
  lg_start a "${SRV_PORT[a]}" "$proto" "$A_SOCKETS" "$A_USERS" "$db" "$raw" "$pid" "${lg_args[@]}"
  ok=$(kv "${LG_CONNECTED[a]}" ok)
  log "A: $label: ${LG_CONNECTED[a]}"
  if ((ok < A_SOCKETS * 9 / 10)); then
    A_ROWS+=("| $label | not measured: $ok of $A_SOCKETS sockets connected ($(grep -o 'first_error=.*' <<<"${LG_CONNECTED[a]}" | cut -c13-90)) |||||||||||")
    lg_stop a
    stop_server a
    return 0
  fi
  sleep 5  # idle: let allocators and GC settle before reading RSS
  rss1=$(rss_kb "$pid")
  local per_socket
  per_socket=$(awk -v a="$rss0" -v b="$rss1" -v n="$ok" 'BEGIN { printf "%.1f", (b - a) / n }')
  idle=$(lg_cmd a $((A_IDLE_SECS + 60)) idle secs="$A_IDLE_SECS")
  if [[ $kind == ours ]]; then
    A_COSTS+=("| $label | idle | – | $(kv "$idle" reads_per_s) | – | $(kv "$idle" sidecar_db_cpu) | $(kv "$idle" sidecar_db_us_per_read) | $(kv "$idle" cpu_pg) |")
  fi
  printf 'rss_idle_kb=%s rss_connected_kb=%s kib_per_socket=%s\n%s\n%s\n' "$rss0" "$rss1" "$per_socket" "${LG_CONNECTED[a]}" "$idle" >"$raw/summary.txt"

  for rate in "${A_RATE_LIST[@]}"; do
    if ((broken)); then
      A_ROWS+=("| $label | $rate | not run: the writers fell short below it |||||||||")
      A_CELL[$name,$rate]="not run"
      continue
    fi
    writers=$((rate / 1000 > A_WRITERS ? rate / 1000 : A_WRITERS))
    log "A: $label: $rate changes/s for $A_SECS s ($writers writers)"
    # Writers far behind a rate take longer than its seconds to write its changes: a long timeout.
    res=$(lg_cmd a $((A_SECS * 20 + 300)) run tag="r$rate" rate="$rate" secs="$A_SECS" writers="$writers" drain=5)
    echo "$res" >>"$raw/summary.txt"
    reached=$(kv "$res" rate)
    log "A: $label: $rate/s (reached $reached): p50 $(ms "$(kv "$res" p50_us)") ms, p99 $(ms "$(kv "$res" p99_us)") ms, lost $(lost_text "$res")"
    local short=""
    awk -v a="$reached" -v t="$rate" 'BEGIN { exit !(a < 0.95 * t) }' && short=" (writers short)"
    A_ROWS+=("| $label | $rate | $reached$short | $(ms "$(kv "$res" p50_us)") | $(ms "$(kv "$res" p99_us)") | $(ms "$(kv "$res" p999_us)") | $(ms "$(kv "$res" max_us)") | $(kv "$res" delivered) / $(lost_text "$res") | $(kv "$res" cpu_server) | $(kv "$res" cpu_pg) | $(us_per "$(kv "$res" cpu_pg)" "$reached") |")
    if [[ $kind == ours ]]; then
      A_COSTS+=("| $label | $rate/s | $reached | $(kv "$res" reads_per_s) | $(awk -v c="$reached" -v r="$(kv "$res" reads_per_s)" 'BEGIN { if (r > 0) printf "%.1f", c / r; else print "–" }') | $(kv "$res" sidecar_db_cpu) | $(kv "$res" sidecar_db_us_per_read) | $(kv "$res" cpu_pg) |")
    fi
    A_NOTES+=("$label at $rate/s: loadgen receiver thread $(kv "$res" cpu_rx)% CPU (whole loadgen $(kv "$res" cpu_loadgen)%), longest loop stall $(ms "$(kv "$res" rx_max_stall_us)") ms; writers late p50/p99 $(ms "$(kv "$res" late_p50_us)")/$(ms "$(kv "$res" late_p99_us)") ms, commit p50/p99 $(ms "$(kv "$res" commit_p50_us)")/$(ms "$(kv "$res" commit_p99_us)") ms; disconnects $(kv "$res" disconnects); deliveries over 20 ms by second: $(slow_seconds "$raw/r$rate.deliveries.csv" "$rate").")
    [[ $rate == 1000 ]] && p99_1k=$(ms "$(kv "$res" p99_us)")
    A_CELL[$name,$rate]="$(ms "$(kv "$res" p50_us)") / $(ms "$(kv "$res" p99_us)")$([[ $(kv "$res" lost) == 0 ]] || echo ", $(kv "$res" lost) lost")$short"
    if ((knee_open)); then
      if a_passes "$res" "$rate"; then knee=$rate; else knee_open=0; fi
    fi
    awk -v a="$reached" -v t="$rate" 'BEGIN { exit !(a < 0.8 * t) }' && broken=1
  done
  A_KNEE[$name]=${knee:-none}
  local knee_text=${knee:-"below ${A_RATE_LIST[0]}"}
  ((knee_open)) && [[ -n $knee ]] && knee_text+=" (the top of the sweep)"
  A_KNEES+=("| $label | $knee_text | $p99_1k | $(mib "$rss0") → $(mib "$rss1") MiB | $per_socket |")
  if [[ $kind == ours ]]; then
    fetch_metrics "${SRV_PORT[a]}" >"$raw/metrics.txt"
    A_NOTES+=("$label, the whole part: $(metric_value "$raw/metrics.txt" membership_notifier_events_total) events, $(metric_value "$raw/metrics.txt" membership_notifier_db_reads_total) log reads, $(metric_value "$raw/metrics.txt" membership_notifier_db_notifications_total) wake-ups, $(metric_value "$raw/metrics.txt" membership_notifier_durable_waits_total) reads that waited for a flush, $(metric_value "$raw/metrics.txt" membership_notifier_polling_spells_total) polling spells.")
  fi
  st=$(lg_cmd a 30 stats)
  echo "$st" >>"$raw/summary.txt"
  A_NOTES+=("$label: connect $(kv "${LG_CONNECTED[a]}" secs) s; loadgen RSS $(mib "$(kv "$st" loadgen_rss_kb)") MiB.")
  lg_stop a
  stop_server a
}

part_a() {
  local m
  # More sockets than the default cap holds (the issue's 19,000 in one process): a smaller cap
  # on handshakes in flight (the loadgen keeps 200) leaves the fds for authenticated sockets.
  if ((A_SOCKETS > SIDECAR_MAX_CONN)) && ((${#SIDECAR_LIMIT_ARGS[@]})); then
    local SIDECAR_LIMIT_ARGS=(--max-unauthenticated 400 --max-unauthenticated-per-address 400)
    local SIDECAR_MAX_CONN=$((FD_LIMIT - 400 - 64 - 128))
    ((A_SOCKETS <= SIDECAR_MAX_CONN)) || log "warning: $A_SOCKETS sockets in one process exceed the fd limit's $SIDECAR_MAX_CONN"
  fi
  declare -gA A_KNEE=() A_CELL=()
  A_TARGETS=(node)
  foreign_start
  a_target node "Node: socket.io gateway, NOTIFY per row" node sio ""
  for m in "${A_MODE_LIST[@]}"; do
    a_target "ours-ws-$m" "membership-notifier ($m), /ws" ours ws "$m"
    A_TARGETS+=("ours-ws-$m")
  done
  A_TARGETS+=("ours-sio-${A_MODE_LIST[0]}")
  a_target "ours-sio-${A_MODE_LIST[0]}" "membership-notifier (${A_MODE_LIST[0]}), /socket.io/" ours sio "${A_MODE_LIST[0]}"
  local node_knee=${A_KNEE[node]:-none} ours_knee=${A_KNEE[ours-ws-${A_MODE_LIST[0]}]:-none}
  {
    echo "## A. Delivery latency over a rate sweep, and footprint: $A_SOCKETS sockets, $A_USERS users, ${A_RATE_LIST[*]} single-row changes/s, $A_SECS s each"
    echo
    echo "Commit→receipt per delivery (the writer's COMMIT returned → the frame was read by the client; one clock). Each change reaches every socket of its user. The writers' commits use synchronous_commit=$A_SYNC (fsync on). Rates in rising order on the same sockets; \"reached\": the rate the writers achieved (under 95% of the target: the machine could not write faster with this server on it; under 80% ends that server's sweep). Lost: not received within 5 s of the last commit of that rate. PostgreSQL CPU is every backend's (the writers' too); per change: that CPU over the changes written."
    echo
    echo "| server | knee: highest rate with p99 ≤ $(ms "$A_KNEE_P99_US") ms and nothing lost (every lower rate too) | p99 ms at 1,000/s | RSS idle → $A_SOCKETS sockets | KiB per idle authenticated socket |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${A_KNEES[@]}"
    echo
    if [[ $node_knee =~ ^[0-9]+$ && $ours_knee =~ ^[0-9]+$ ]]; then
      echo "Knee, ours (${A_MODE_LIST[0]}, /ws) against Node: $(awk -v a="$ours_knee" -v b="$node_knee" 'BEGIN { printf "%.1f", a / b }')× (the aim: at least 3×; a knee at the top of the sweep is a lower bound)."
      echo
    fi
    echo "Side by side, p50 / p99 ms (and anything lost) at each rate:"
    echo
    local t rate
    printf '| changes/s |'
    for t in "${A_TARGETS[@]}"; do
      case $t in node) printf ' Node |' ;; ours-ws-*) printf ' ours (%s), /ws |' "${t#ours-ws-}" ;; *) printf ' ours (%s), /socket.io/ |' "${t#ours-sio-}" ;; esac
    done
    echo
    printf '|---|'; for t in "${A_TARGETS[@]}"; do printf -- '---|'; done; echo
    for rate in "${A_RATE_LIST[@]}"; do
      printf '| %s |' "$rate"
      for t in "${A_TARGETS[@]}"; do printf ' %s |' "${A_CELL[$t,$rate]:-–}"; done
      echo
    done
    echo
    echo "| server | changes/s | reached | p50 ms | p99 ms | p99.9 ms | max ms | delivered / lost | server CPU % | PostgreSQL CPU % | PostgreSQL µs CPU per change |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${A_ROWS[@]}"
    echo
    if ((${#A_COSTS[@]})); then
      echo "What one sidecar costs the database: its log reads (from its /metrics) and the CPU of its own database sessions (listener, history, marks; from /proc/PID/schedstat), idle ($A_IDLE_SECS s, sockets connected, no writes) and at each rate; beside them, all of PostgreSQL's CPU (mostly the writers' own sessions)."
      echo
      echo "| server | load | changes/s | log reads/s | changes per read | its sessions' CPU % | µs CPU per read | all PostgreSQL CPU % |"
      echo "|---|---|---|---|---|---|---|---|"
      printf '%s\n' "${A_COSTS[@]}"
      echo
    fi
    echo "The same receiving client (bench/loadgen, C++ epoll, Socket.IO or plain WebSocket) is used against both servers. Other processes on the machine used about $(foreign_pct)% CPU (100% = one core, of $(nproc)00%) on average during part A."
    echo
    printf -- '- %s\n' "${A_NOTES[@]}"
    echo
  } >>"$OUT/report.md"
}
