# Parts B, C and S of bench/run, and helpers the other parts use (part A: part_a.sh, part D:
# part_d.sh). Sourced; uses the settings and helpers of bench/run and common.sh.

ms() { awk -v u="$1" 'BEGIN { if (u == "" || u == "nan") print "–"; else printf "%.2f", u / 1000 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print m }'; }
minmax() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "–" hi }'; }
lost_text() {  # lost_text RESULT_LINE: "0", or what went wrong
  local r=$1 t
  t=$(kv "$r" lost)
  [[ $(kv "$r" dup) == 0 ]] || t+=" (+$(kv "$r" dup) dup)"
  [[ $(kv "$r" misrouted) == 0 ]] || t+=" (+$(kv "$r" misrouted) MISROUTED)"
  [[ $(kv "$r" failures) == 0 ]] || t+=" ($(kv "$r" failures) writes failed)"
  printf '%s' "$t"
}

# ---- B: write cost of each wake-up mode, and latency at low and at the highest rate -----------
# Every configuration gets its own database, server and clients, all up at once, so that the
# pgbench points can be interleaved: this disk's fsync cost drifts several-fold over tens of
# seconds, and configurations measured one after the other would mostly measure the drift.
B_CONFIGS=()
declare -A B_LABEL=() B_KIND=() B_TPS=() B_LOW=() B_HI=() B_HI_TPS=() B_AFTER=() B_CHECK=() B_PAIR_TPS=() B_PAIR_CPU=()
B_PAIRED=()

# Kinds: none; floor; ref (a reference under the floor, its trigger in sql/MODE.sql: measured
# in the paired rounds only); ours (the sidecar's triggers and a sidecar in wake mode MODE); node.
b_setup() {  # b_setup NAME LABEL KIND MODE
  local name=$1 kind=$3 db=b_$1 raw=$OUT/b/$1
  B_CONFIGS+=("$name")
  B_LABEL[$name]=$2
  B_KIND[$name]=$kind
  mkdir -p "$raw"
  make_db "$db" "$([[ $kind == ref ]] && echo "$4" || echo "$kind")" on
  case $kind in
    ours)
      start_sidecar "$name" "$db" "$4" "$raw/server.log"
      lg_start "$name" "${SRV_PORT[$name]}" ws "$B_SOCKETS" "$B_USERS" "$db" "$raw" "${SRV_PID[$name]}" ;;
    node)
      start_node "$name" "$db" "$raw/server.log"
      lg_start "$name" "${SRV_PORT[$name]}" sio "$B_SOCKETS" "$B_USERS" "$db" "$raw" "${SRV_PID[$name]}" ;;
    none | floor | ref)
      lg_start "$name" 0 ws 0 "$B_USERS" "$db" "$raw" 0 ;;
  esac
  log "B: $2: ${LG_CONNECTED[$name]}"
}

b_pgbench() {  # b_pgbench NAME CLIENTS SECS LOG: prints tps
  pgbench_tps "b_$1" "$2" "$3" "$4"
}

# One paired round, with what it cost in CPU: whether the machine's CPU or its disk is what
# limits the writers decides what a trigger or a reading sidecar costs them. B_PAIR_CPU holds
# "machine-busy iowait all sidecar txns wal-bytes wal-flushes" in clock ticks (the sidecar: its
# process and its database sessions; 0 where there is none), transactions, bytes and flushes;
# paired-cpu.txt keeps them by round. The WAL figures say whether a configuration's cost is in
# what the commits give the disk (more bytes, fewer commits per flush) or in CPU.
b_paired_round() {  # b_paired_round NAME ROUND CLIENTS
  local name=$1 db=b_$1 log=$OUT/b/$1/pgbench-paired-r$2.log m0 m1 s0 s1 w0 w1
  psql_q "$db" -c CHECKPOINT
  w0=$(wal_point) m0=$(machine_split) s0=$(sidecar_ticks "$name")
  pgbench_inserts "$db" "$3" "$B_PAIR_SECS" "$log" || die "pgbench failed: $(tail -3 "$log")"
  m1=$(machine_split) s1=$(sidecar_ticks "$name") w1=$(wal_after "$db")
  B_PAIR_TPS[$name,$2]=$(pgbench_log_tps "$log")
  read -r -a m0 <<<"$m0"
  read -r -a m1 <<<"$m1"
  read -r -a w0 <<<"$w0"
  read -r -a w1 <<<"$w1"
  B_PAIR_CPU[$name,$2]="$((m1[0] - m0[0])) $((m1[1] - m0[1])) $((m1[2] - m0[2])) $((s1 - s0)) \
$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log") \
$((w1[0] - w0[0])) $((w1[1] - w0[1]))"
  echo "$2 ${B_PAIR_CPU[$name,$2]}" >>"$OUT/b/$name/paired-cpu.txt"
}

part_b() {
  local m name r c k order last=${CLIENT_LIST[-1]} pgb
  foreign_start
  b_setup none "none" none ""
  if ((B_REFERENCES)); then
    b_setup noop "a row trigger that does nothing (what firing any trigger costs)" ref noop
    b_setup least "the least log a trigger could write: xid, op, channel, user; no key, id or time" ref least_log
  fi
  b_setup floor "a bare row trigger writing the same log; nothing else (the floor)" floor ""
  for m in "${MODE_LIST[@]}"; do
    case $m in
      notify) b_setup notify "event log + NOTIFY on every commit (notify)" ours notify ;;
      adaptive) b_setup adaptive "event log + NOTIFY while commits come slowly (adaptive)" ours adaptive ;;
      poll) b_setup poll "event log, no NOTIFY (poll)" ours poll ;;
      *) b_setup "$m" "event log, $m" ours "$m" ;;
    esac
  done
  b_setup node "one NOTIFY per row, no log (Node baseline)" node ""

  for name in "${B_CONFIGS[@]}"; do
    [[ ${B_KIND[$name]} == ours || ${B_KIND[$name]} == node ]] || continue
    log "B: ${B_LABEL[$name]}: latency at ${B_PROBE_RATE} changes/s"
    B_LOW[$name]=$(lg_cmd "$name" $((B_LOW_SECS + 120)) run tag=low rate="$B_PROBE_RATE" secs="$B_LOW_SECS" writers=2 drain=5)
  done

  # The references only answer the 0.8x question: the paired rounds below.
  local main=()
  for name in "${B_CONFIGS[@]}"; do [[ ${B_KIND[$name]} == ref ]] || main+=("$name"); done
  local n=${#main[@]}
  for ((r = 1; r <= B_ROUNDS; r++)); do
    for c in "${CLIENT_LIST[@]}"; do
      order=()
      for ((k = 0; k < n; k++)); do order+=("${main[(k + r - 1) % n]}"); done
      for name in "${order[@]}"; do
        B_TPS[$name,$c,$r]=$(b_pgbench "$name" "$c" "$B_SECS" "$OUT/b/$name/pgbench-c$c-r$r.log")
      done
      log "B: round $r/$B_ROUNDS, $c writers: $(for name in "${main[@]}"; do printf '%s %s  ' "$name" "${B_TPS[$name,$c,$r]}"; done)"
    done
  done

  # The 0.8x question at the largest point: rounds above are enough to tell the modes apart
  # (0.2x against 0.8x), not to tell 0.78 from 0.82, because the disk's durable throughput
  # drifts by more than that between rounds. Many short rounds of the configurations that are
  # near it, in rotating order, paired with "none" of the same round, narrow it down.
  B_PAIRED=()
  if ((B_PAIR_ROUNDS > 0)); then
    for name in "${B_CONFIGS[@]}"; do
      [[ ${B_KIND[$name]} == node || $name == notify ]] || B_PAIRED+=("$name")
    done
    n=${#B_PAIRED[@]}
    log "B: $B_PAIR_ROUNDS paired rounds of $B_PAIR_SECS s at $last writers: ${B_PAIRED[*]}"
    for ((r = 1; r <= B_PAIR_ROUNDS; r++)); do
      for ((k = 0; k < n; k++)); do
        b_paired_round "${B_PAIRED[(k + r - 1) % n]}" "$r" "$last"
      done
    done
  fi

  # The highest rate: probes ride along with the largest pgbench point, one configuration at a time.
  for name in "${B_CONFIGS[@]}"; do
    [[ ${B_KIND[$name]} == ours || ${B_KIND[$name]} == node ]] || continue
    log "B: ${B_LABEL[$name]}: latency during pgbench with $last writers"
    psql_q "b_$name" -c CHECKPOINT
    pgbench_inserts "b_$name" "$last" "$B_HI_SECS" "$OUT/b/$name/pgbench-hi.log" &
    pgb=$!
    sleep 2
    B_HI[$name]=$(lg_cmd "$name" $((B_HI_SECS + 120)) run tag=hi rate="$B_PROBE_RATE" secs=$((B_HI_SECS - 4)) writers=4 drain=5)
    wait "$pgb" || die "pgbench failed: $(tail -3 "$OUT/b/$name/pgbench-hi.log")"
    B_HI_TPS[$name]=$(pgbench_log_tps "$OUT/b/$name/pgbench-hi.log")
    # The low rate again, at once: what a load leaves behind (adaptive mode remembers a queue
    # on the NOTIFY lock, and a limit lowered too far polls a low rate it should be woken for).
    log "B: ${B_LABEL[$name]}: latency at ${B_PROBE_RATE} changes/s again, right after"
    B_AFTER[$name]=$(lg_cmd "$name" $((B_LOW_SECS + 120)) run tag=after rate="$B_PROBE_RATE" secs="$B_LOW_SECS" writers=2 drain=5)
    B_CHECK[$name]=$(lg_cmd "$name" 120 check wait=5)
  done
  for name in "${B_CONFIGS[@]}"; do
    [[ ${B_KIND[$name]} == ours ]] && fetch_metrics "${SRV_PORT[$name]}" >"$OUT/b/$name/metrics.txt"
    lg_stop "$name"
    stop_server "$name"
    printf '%s\n%s\n%s\n%s\n%s\n' "${LG_CONNECTED[$name]}" "${B_LOW[$name]:-}" "${B_HI[$name]:-}" "${B_AFTER[$name]:-}" "${B_CHECK[$name]:-}" >"$OUT/b/$name/summary.txt"
  done
  B_FOREIGN=$(foreign_pct)
  b_report
}

b_report() {
  local name c r cells vals ratios floors vs_floor heads="" last=${CLIENT_LIST[-1]} low hi after chk lost ones=()
  for c in "${CLIENT_LIST[@]}"; do heads+="tps, $c writer$([[ $c == 1 ]] || echo s) | "; done
  for ((r = 1; r <= B_ROUNDS; r++)); do ones+=("${B_TPS[none,1,$r]:-}"); done
  {
    echo "## B. Write cost: pgbench one-row INSERT transactions, durable commits"
    echo
    echo "Each configuration has its own database and a server with $B_SOCKETS sockets for $B_USERS users (1% of pgbench's rows are theirs, so delivered). tps: median (min–max) of $B_ROUNDS rounds of ${B_SECS} s per point, configurations interleaved in rotating order; \"vs none\": median of the per-round ratios at $last writers. Latency: commit→client of probe changes at ${B_PROBE_RATE}/s, alone, during pgbench with $last writers (its tps in brackets), and alone again right after that pgbench. Lost: probe deliveries (alone + at max rate + after); then every row of a connected user checked against what each of its sockets received."
    echo
    echo "| triggers installed | ${heads}vs none at $last | vs the floor at $last | p50 / p99 ms at ${B_PROBE_RATE}/s | p50 / p99 ms at max rate | p50 / p99 ms at ${B_PROBE_RATE}/s after it | lost | server CPU % at max |"
    echo "|---|$(for c in "${CLIENT_LIST[@]}"; do printf -- '---|'; done)---|---|---|---|---|---|---|"
    for name in "${B_CONFIGS[@]}"; do
      [[ ${B_KIND[$name]} == ref ]] && continue
      cells=""
      for c in "${CLIENT_LIST[@]}"; do
        vals=()
        for ((r = 1; r <= B_ROUNDS; r++)); do vals+=("${B_TPS[$name,$c,$r]}"); done
        cells+="$(median "${vals[@]}") ($(minmax "${vals[@]}")) | "
      done
      ratios=() floors=()
      for ((r = 1; r <= B_ROUNDS; r++)); do
        ratios+=("$(awk -v a="${B_TPS[$name,$last,$r]}" -v b="${B_TPS[none,$last,$r]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')")
        floors+=("$(awk -v a="${B_TPS[$name,$last,$r]}" -v b="${B_TPS[floor,$last,$r]:-0}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')")
      done
      vs_floor="$(median "${floors[@]}")× ($(minmax "${floors[@]}"))"
      if [[ ${B_KIND[$name]} == none ]]; then
        echo "| ${B_LABEL[$name]} | ${cells}1.00× | $vs_floor | – | – | – | – | – |"
        continue
      fi
      if [[ ${B_KIND[$name]} == floor ]]; then
        echo "| ${B_LABEL[$name]} | ${cells}$(median "${ratios[@]}")× ($(minmax "${ratios[@]}")) | 1.00× | – | – | – | – | – |"
        continue
      fi
      low=${B_LOW[$name]} hi=${B_HI[$name]} after=${B_AFTER[$name]} chk=${B_CHECK[$name]}
      lost="$(lost_text "$low") + $(lost_text "$hi") + $(lost_text "$after"); rows: $(kv "$chk" missing) missing of $(kv "$chk" expected)"
      echo "| ${B_LABEL[$name]} | ${cells}$(median "${ratios[@]}")× ($(minmax "${ratios[@]}")) | $vs_floor | $(ms "$(kv "$low" p50_us)") / $(ms "$(kv "$low" p99_us)") | $(ms "$(kv "$hi" p50_us)") / $(ms "$(kv "$hi" p99_us)") (${B_HI_TPS[$name]} tps) | $(ms "$(kv "$after" p50_us)") / $(ms "$(kv "$after" p99_us)") | $lost | $(kv "$hi" cpu_server) |"
    done
    echo
    if ((${#B_PAIRED[@]})); then
      echo "Paired rounds at $last writers ($B_PAIR_ROUNDS rounds of $B_PAIR_SECS s, rotating order, each against \"none\" and against the floor of its round): mean of the per-round ratios ± twice its standard error, and the ratio of the summed tps."
      echo
      echo "| configuration | vs none, mean ± 2 SE | vs none, ratio of sums | vs the floor, mean ± 2 SE | vs the floor, ratio of sums |"
      echo "|---|---|---|---|---|"
      for name in "${B_PAIRED[@]}"; do
        [[ ${B_KIND[$name]} == none ]] && continue
        for ((r = 1; r <= B_PAIR_ROUNDS; r++)); do echo "${B_PAIR_TPS[$name,$r]} ${B_PAIR_TPS[none,$r]} ${B_PAIR_TPS[floor,$r]:-0}"; done |
          awk -v label="${B_LABEL[$name]}" -v kind="${B_KIND[$name]}" '
            $2 > 0 { x = $1 / $2; n++; s += x; ss += x * x; a += $1; b += $2 }
            $3 > 0 { y = $1 / $3; fn++; fs += y; fss += y * y; fa += $1; fb += $3 }
            function ci(n, s, ss,   m, v) { m = n ? s / n : 0; v = n > 1 ? (ss - n * m * m) / (n - 1) : 0
                                           return sprintf("%.3f× ± %.3f", m, 2 * sqrt(v > 0 ? v / n : 0)) }
            END { floor = kind == "floor" ? "1.00× | 1.00×" : (fn ? ci(fn, fs, fss) " | " sprintf("%.3f×", fa / fb) : "– | –")
                  printf "| %s | %s | %.3f× | %s |\n", label, ci(n, s, ss), (b > 0 ? a / b : 0), floor }'
      done
      echo
      echo "Where the CPU went in those rounds, summed over them (from /proc; 100% busy = all $(nproc) cores): how busy the machine was and how long it waited for I/O; its busy time per transaction (every process's, pgbench's too: where busy stays level across configurations this moves inversely with tps, whatever the cause); the part of that the sidecar took itself (its process and its database sessions), the direct CPU cost of reading and delivering; and what the commits gave the disk (from pg_stat_wal and the WAL position: every process's WAL, the sidecar's too): where the transactions per flush stay level, a configuration's cost is in CPU, not in the flushes. The bytes include the full-page images each round writes after its checkpoint, as many as the pages it touches in the table's random-key indexes: they grow with the table, and the references' databases (paired rounds only) stay smaller."
      echo
      echo "| configuration | machine busy | waiting for I/O | machine µs per transaction | of which the sidecar and its database sessions | WAL bytes per transaction | transactions per WAL flush |"
      echo "|---|---|---|---|---|---|---|"
      for name in "${B_PAIRED[@]}"; do
        for ((r = 1; r <= B_PAIR_ROUNDS; r++)); do echo "${B_PAIR_CPU[$name,$r]}"; done |
          awk -v label="${B_LABEL[$name]}" -v hz="$(getconf CLK_TCK)" -v kind="${B_KIND[$name]}" '
            { b += $1; w += $2; a += $3; sc += $4; t += $5; wb += $6; wf += $7 }
            END { us = 1e6 / hz
                  printf "| %s | %.0f%% | %.1f%% | %.1f | %s | %.0f | %.1f |\n", label, (a ? 100 * b / a : 0), (a ? 100 * w / a : 0),
                    (t ? b * us / t : 0), (kind != "ours" ? "–" : sprintf("%.1f", t ? sc * us / t : 0)),
                    (t ? wb / t : 0), (wf ? t / wf : 0) }'
      done
      echo
    fi
    echo "The disk's fsync cost drifts: \"none\" at 1 writer (about one fsync per commit) ran at $(minmax "${ones[@]}") tps across rounds. Other processes on the machine used about $B_FOREIGN% CPU (100% = one core) on average during part B."
    echo
    # What each sidecar did over the whole part: a read that got slow (a plan gone wrong, a log
    # grown large) or a mode that flips too often shows here before it shows in tps.
    for name in "${B_CONFIGS[@]}"; do
      [[ ${B_KIND[$name]} == ours ]] || continue
      local mf=$OUT/b/$name/metrics.txt
      echo "- $name: $(metric_value "$mf" membership_notifier_db_reads_total) log reads, mean $(awk -v s="$(metric_value "$mf" membership_notifier_db_read_seconds_sum)" -v n="$(metric_value "$mf" membership_notifier_db_read_seconds_count)" 'BEGIN { printf "%.2f", (n > 0 ? s * 1000 / n : 0) }') ms; $(metric_value "$mf" membership_notifier_db_notifications_total) wake-ups, $(metric_value "$mf" membership_notifier_durable_waits_total) reads that waited for a flush; $(metric_value "$mf" membership_notifier_polling_spells_total) polling spells ($(metric_value "$mf" membership_notifier_notify_contention_total) begun by commits queueing on the NOTIFY lock)."
    done
    echo
  } >>"$OUT/report.md"
}

# ---- Part C: a reconnect wave ----------------------------------------------------------------
# Quiet clients (users with no changes of their own) stay connected while other users' changes
# fill the log; then the sidecar is killed and restarted on the same port, and every client
# comes back with the last offset it was given. Each resume reads the log from that offset on,
# shared by the resumes waiting at the time. With position frames (a ping every $C_PING, each
# carrying a newer offset to a client that had no event) against without them (a ping interval
# longer than the run), in one run, each in its own database.

c_variant() {  # c_variant NAME LABEL PING
  local name=$1 dir=$OUT/c/$1 port line i
  mkdir -p "$dir"
  make_db "c_$name" ours on
  start_sidecar "c_$name" "c_$name" adaptive "$dir/sidecar.log" 0 --ping-interval "$3"
  port=${SRV_PORT[c_$name]}
  BENCH_JWT_SECRET=$JWT_SECRET NODE_PATH=$BENCH/baseline/node_modules \
    node "$BENCH/clients/quiet.js" "$port" "$C_CLIENTS" q "$C_RETRY_MS" >"$dir/clients.log" 2>&1 &
  local clients_pid=$!
  for ((i = 0; i < 600; i++)); do grep -q '"connected"' "$dir/clients.log" && break; sleep 0.1; done
  grep -q '"connected"' "$dir/clients.log" || die "part C clients did not connect: $(tail -3 "$dir/clients.log")"
  pgbench_tps "c_$name" 16 "$C_SECS" "$dir/pgbench.log" >/dev/null  # the log rows say how much it wrote
  sleep "$C_SETTLE"  # one more ping interval: the last positions go out
  fetch_metrics "$port" >"$dir/metrics-before.txt"
  kill -KILL "${SRV_PID[c_$name]}"
  wait "${SRV_PID[c_$name]}" 2>/dev/null || true
  start_sidecar "c_$name" "c_$name" adaptive "$dir/sidecar-restarted.log" "$port" --ping-interval "$3"
  for ((i = 0; i < 1200; i++)); do grep -q '"back"' "$dir/clients.log" && break; sleep 0.1; done
  line=$(grep '"back"' "$dir/clients.log") || die "part C clients did not all come back in 120 s: $(tail -3 "$dir/clients.log")"
  wait "$clients_pid" 2>/dev/null || true
  fetch_metrics "$port" >"$dir/metrics-after.txt"
  stop_server "c_$name"
  C_ROWS[$name]=$(psql_q "c_$name" -At -c "SELECT count(*) FROM membership_notifier.event_log")
  C_LINE[$name]=$line
  C_LABEL[$name]=$2
  log "C: $2: $line"
}

part_c() {
  declare -gA C_ROWS=() C_LINE=() C_LABEL=()
  foreign_start
  c_variant positions "with position frames (--ping-interval $C_PING)" "$C_PING"
  c_variant none "without (--ping-interval 1h)" 1h
  local foreign name mf
  foreign=$(foreign_pct)
  {
    echo "## C. A reconnect wave: the sidecar killed and restarted under quiet clients"
    echo
    echo "$C_CLIENTS clients of users with no changes of their own stay connected while pgbench (16 writers, ${C_SECS} s, other users) fills the log; then the sidecar is killed (SIGKILL) and started again on the same port, and every client comes back ${C_RETRY_MS} ms after its drop with the last offset it was given. Wave: from the first drop to each client's session frame. Replay reads: the log reads the restarted sidecar made for the resumes (each shared by the resumes waiting then) and their time, sent to answered."
    echo
    echo "| sidecar | log rows | position frames before the kill | resumed (recovered) | wave p50 / p99 / last ms | replay reads | their time s |"
    echo "|---|---|---|---|---|---|---|"
    for name in positions none; do
      mf=$OUT/c/$name/metrics-after.txt
      awk -v label="${C_LABEL[$name]}" -v rows="${C_ROWS[$name]}" -v q="$(metric_value "$mf" membership_notifier_replay_queries_total)" \
          -v s="$(metric_value "$mf" membership_notifier_replay_query_seconds_total)" -v n="$C_CLIENTS" -v line="${C_LINE[$name]}" 'BEGIN {
        split("", f); gsub(/[{}"]/, "", line); k = split(line, kv, ",")
        for (i = 1; i <= k; i++) { split(kv[i], p, ":"); f[p[1]] = p[2] }
        printf "| %s | %s | %s | %s of %s | %s / %s / %s | %s | %.3f |\n", label, rows, f["positions"], f["recovered"], n,
               f["p50_ms"], f["p99_ms"], f["last_ms"], q, s }'
    done
    echo
    echo "Other processes on the machine used about $foreign% CPU (100% = one core) on average during part C."
    echo
  } >>"$OUT/report.md"
}

# ---- S: what --durable-standbys costs: latency with a streaming standby, with and without it ---
# A hot standby of the bench's cluster (pg_basebackup, streaming, fsync on) and one database;
# one sidecar delivers once the primary has flushed (the default), one once the standby has too.
# The same durable writers at S_RATE changes/s against each in turn, S_ROUNDS times alternating.
part_s() {
  local standby=$PG_DIR/standby sport=$((PG_PORT + 1)) name cfg round res i
  log "S: a streaming standby of the bench's cluster"
  runuser -u postgres -- "$PG_BIN/pg_basebackup" -h "$PG_DIR" -p "$PG_PORT" -U postgres -D "$standby" -R \
    -X stream --checkpoint=fast >"$OUT/basebackup.log" 2>&1 || die "pg_basebackup failed: $(tail -5 "$OUT/basebackup.log")"
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$standby" -l "$PG_DIR/standby.log" -w -t 60 \
    -o "-k $PG_DIR -p $sport -c listen_addresses= -c fsync=on -c max_connections=200 -c shared_buffers=256MB" start >/dev/null \
    || die "the standby did not start: $(tail -5 "$PG_DIR/standby.log")"
  for ((i = 0; i < 100; i++)); do
    name=$(psql_q postgres -At -c "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")
    [[ -n $name ]] && break
    sleep 0.1
  done
  [[ -n $name ]] || die "the standby does not stream"
  make_db s ours on
  declare -A S_P50=() S_P99=() S_LOST=()
  for ((round = 1; round <= S_ROUNDS; round++)); do
    for cfg in primary standby; do
      if [[ $cfg == standby ]]; then
        start_sidecar s s adaptive "$OUT/s-$cfg-$round.log" 0 --durable-standbys "$name"
      else
        start_sidecar s s adaptive "$OUT/s-$cfg-$round.log"
      fi
      lg_start s "${SRV_PORT[s]}" ws "$S_SOCKETS" "$S_USERS" s "$OUT/s/$cfg-$round" "${SRV_PID[s]}"
      res=$(lg_cmd s $((S_SECS + 180)) run tag=s$round$cfg rate="$S_RATE" secs="$S_SECS" writers=2 drain=5)
      lg_stop s
      stop_server s
      S_P50[$cfg]+="$(ms "$(kv "$res" p50_us)") "
      S_P99[$cfg]+="$(ms "$(kv "$res" p99_us)") "
      S_LOST[$cfg]+="$(lost_text "$res") "
      log "S: round $round, $cfg: p50 $(ms "$(kv "$res" p50_us)") ms, p99 $(ms "$(kv "$res" p99_us)") ms"
    done
  done
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$standby" -m fast -w stop >/dev/null 2>&1 || true
  {
    echo "## S. What --durable-standbys costs: $S_RATE durable changes/s for $S_SECS s, $S_SOCKETS sockets, one streaming standby"
    echo
    echo "Commit→receipt per delivery, $S_ROUNDS rounds each, alternating (p50 and p99 of each round, ms)."
    echo
    echo "| delivered once flushed by | p50 ms by round | p99 ms by round | lost |"
    echo "|---|---|---|---|"
    echo "| the primary (default) | ${S_P50[primary]} | ${S_P99[primary]} | ${S_LOST[primary]} |"
    echo "| the primary and the standby (\`--durable-standbys $name\`) | ${S_P50[standby]} | ${S_P99[standby]} | ${S_LOST[standby]} |"
    echo
  } >>"$OUT/report.md"
}
