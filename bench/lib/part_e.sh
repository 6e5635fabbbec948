# Part E of bench/run: what a statement that changes many rows costs per row (issue 27).
# Sourced; uses the settings and helpers of bench/run and common.sh.
#
# One session per measurement runs K statements of N rows each, every statement its own
# transaction with a durable commit (synchronous_commit=on, fsync on): K INSERTs of a new
# channel with N members, then K DELETEs of those channels. Per row: the wall time (what the
# application waits) and the CPU time of the session's backend (/proc/<pid>/schedstat, to the
# nanosecond), which other processes on a shared machine disturb far less than the wall time.
# Configurations, each its own database, measured side by side in rotating order, every
# measurement after a CHECKPOINT:
#   none   no triggers
#   row    the migration's triggers with INSERT and DELETE logged by its row triggers
#          (bench/sql/row_triggers.sql: what it installed before statement triggers)
#   stmt   the migration's triggers as installed (statement triggers over transition tables)
#   row+w, stmt+w  the same while a sidecar waits for wake-ups (a session that called
#          set_waiting(true) stays connected), so the triggers also NOTIFY
# Settings from the environment: E_ROUNDS (7), E_SIZES (1,10,100,10000), E_ROWS (rows per
# measurement at most, 20000), E_STATEMENTS (statements per measurement at most, 200),
# E_ASYNC_SIZES (1,10,100) and E_ASYNC_BLOCKS (15), below. Each measuring session first runs E_WARMUP statements of the same
# kind, not counted.

E_ROUNDS=${E_ROUNDS:-7}
E_SIZES=${E_SIZES:-1,10,100,10000}
E_ROWS=${E_ROWS:-20000}
E_STATEMENTS=${E_STATEMENTS:-200}
E_WARMUP=3  # statements each session runs before it measures (1 of 1,000 rows or more)
E_CONFIGS=(none row stmt row+w stmt+w)
declare -A E_LABEL=([none]="no triggers" [row]="row triggers" [stmt]="statement triggers"
                    [row+w]="row triggers, sidecar waiting" [stmt+w]="statement triggers, sidecar waiting")
declare -A E_WALL=() E_CPU=() E_WAITER=()

e_db() { printf 'e_%s' "${1//+/_}"; }

e_setup() {  # e_setup CONFIG
  local cfg=$1 db
  db=$(e_db "$cfg")
  case $cfg in
    none) make_db "$db" none on ;;
    row | row+w) make_db "$db" ours on
                 psql_q "$db" -f "$BENCH/sql/row_triggers.sql" >/dev/null || die "cannot install row triggers" ;;
    stmt | stmt+w) make_db "$db" ours on ;;
  esac
  # Autovacuum would come and go in the measured windows; VACUUM runs between them instead.
  psql_q "$db" -c "ALTER TABLE channel_members SET (autovacuum_enabled = off)" >/dev/null
  if [[ $cfg == *+w ]]; then
    # A sidecar's mark and its session lock (set_waiting), held by a session that then sleeps.
    PGAPPNAME=bench-e-waiting psql_q "$db" -c "SELECT membership_notifier.set_waiting(true)" \
      -c "SELECT pg_sleep(86400)" >/dev/null 2>&1 &
    E_WAITER[$cfg]=$!
    local i
    for ((i = 0; i < 100; i++)); do
      [[ $(psql_q "$db" -At -c "SELECT count(*) FROM membership_notifier.listener WHERE waiting") == 1 ]] && return 0
      sleep 0.1
    done
    die "E: the waiting session of $cfg did not arm"
  fi
}

e_teardown() {
  local cfg db
  for cfg in "${!E_WAITER[@]}"; do
    db=$(e_db "$cfg")
    psql_q postgres -At -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                             WHERE datname = '$db' AND application_name = 'bench-e-waiting'" >/dev/null || true
    kill -TERM "${E_WAITER[$cfg]}" 2>/dev/null || true
    wait "${E_WAITER[$cfg]}" 2>/dev/null || true
    unset "E_WAITER[$cfg]"
  done
}

# Statements of a measurement: K of OP with N rows each, channels e<ROUND>_<N>_<i>; FIRST
# numbers the first (the warm-up's are numbered from 1 - K, before the measured ones).
e_statements() {  # e_statements OP N K ROUND [FIRST]
  local i
  for ((i = ${5:-1}; i < ${5:-1} + $3; i++)); do
    if [[ $1 == insert ]]; then
      printf "INSERT INTO channel_members (channel_id, user_id) SELECT 'e%s_%s_%s', 'u' || g FROM generate_series(1, %s) g;\n" "$4" "$2" "$i" "$2"
    else
      printf "DELETE FROM channel_members WHERE channel_id = 'e%s_%s_%s';\n" "$4" "$2" "$i"
    fi
  done
}

# Runs one measurement; prints "wall_ns cpu_ns rows".
e_measure() {  # e_measure CONFIG OP N K ROUND
  local db script marks w=$((${3} < 1000 ? E_WARMUP : 1))
  db=$(e_db "$1")
  script=$OUT/e/$1-$2-n$3-r$5.sql
  marks=$OUT/e/$1-$2-n$3-r$5.marks
  {
    echo "SELECT pg_backend_pid() AS pid \\gset"
    echo "\\setenv E_PID :pid"
    # A fresh session's first statements fill its caches and compile the trigger functions.
    e_statements "$2" "$3" "$w" "$5" $((1 - w))
    echo "\\! printf '%s ' \"\$(date +%s%N)\" >>'$marks'; cut -d' ' -f1 /proc/\$E_PID/schedstat >>'$marks'"
    e_statements "$2" "$3" "$4" "$5"
    echo "\\! printf '%s ' \"\$(date +%s%N)\" >>'$marks'; cut -d' ' -f1 /proc/\$E_PID/schedstat >>'$marks'"
  } >"$script"
  psql_q "$db" -c "VACUUM channel_members" -c CHECKPOINT >/dev/null
  : >"$marks"
  psql_q "$db" -f "$script" >/dev/null || die "E: $1 $2 n=$3 failed (see $script)"
  awk -v rows=$(($3 * $4)) 'NR == 1 { w0 = $1; c0 = $2 } NR == 2 { printf "%.0f %.0f %d\n", $1 - w0, $2 - c0, rows }' "$marks"
}

# Small statements once more, with synchronous_commit=off: the triggers' CPU per row with the
# disk's flush out of the way (at a few rows, the commit's flush costs the backend more CPU than
# the triggers, and varies more). One psql process runs blocks of INSERTs of N rows (300 rows a
# block, at least 20 statements), then the DELETEs of those channels, in each configuration in
# turn (\c), rotating, after a warm-up in each fresh session; the medians over E_ASYNC_BLOCKS
# blocks. Fills E_ASYNC[config,insert|delete,N] with µs per row.
E_ASYNC_SIZES=${E_ASYNC_SIZES:-1,10,100}
E_ASYNC_BLOCKS=${E_ASYNC_BLOCKS:-15}
declare -A E_ASYNC=()
e_async() {  # e_async N
  local n=$1 f=$OUT/e/async-n$1.sql m=$OUT/e/async-n$1.marks b j i cfg nc=${#E_CONFIGS[@]} k
  k=$((300 / n < 20 ? 20 : 300 / n))
  : >"$m"
  {
    for ((b = 1; b <= E_ASYNC_BLOCKS; b++)); do
      for ((j = 0; j < nc; j++)); do
        cfg=${E_CONFIGS[(j + b) % nc]}
        echo "\\c $(e_db "$cfg")"
        echo "SET synchronous_commit = off;"
        echo "SELECT pg_backend_pid() AS pid \\gset"
        echo "\\setenv E_PID :pid"
        for ((i = 1; i <= 10; i++)); do
          echo "INSERT INTO channel_members (channel_id, user_id) SELECT 'a${n}_${b}_w$i', 'u' || g FROM generate_series(1, $n) g;"
          echo "DELETE FROM channel_members WHERE channel_id = 'a${n}_${b}_w$i';"
        done
        # shellcheck disable=SC2028  # the \n is tr's, for psql's shell, not echo's
        echo "\\! printf '%s ' '$cfg' >>'$m'; cut -d' ' -f1 /proc/\$E_PID/schedstat | tr '\\n' ' ' >>'$m'"
        for ((i = 1; i <= k; i++)); do
          echo "INSERT INTO channel_members (channel_id, user_id) SELECT 'a${n}_${b}_$i', 'u' || g FROM generate_series(1, $n) g;"
        done
        # shellcheck disable=SC2028
        echo "\\! cut -d' ' -f1 /proc/\$E_PID/schedstat | tr '\\n' ' ' >>'$m'"
        for ((i = 1; i <= k; i++)); do
          echo "DELETE FROM channel_members WHERE channel_id = 'a${n}_${b}_$i';"
        done
        echo "\\! cut -d' ' -f1 /proc/\$E_PID/schedstat >>'$m'"
      done
    done
  } >"$f"
  psql_q e_none -f "$f" >/dev/null || die "E: statements of $n rows with synchronous_commit=off failed (see $f)"
  for cfg in "${E_CONFIGS[@]}"; do
    # shellcheck disable=SC2046
    E_ASYNC[$cfg,insert,$n]=$(median $(awk -v c="$cfg" -v r=$((n * k)) '$1 == c { print ($3 - $2) / r / 1000 }' "$m"))
    # shellcheck disable=SC2046
    E_ASYNC[$cfg,delete,$n]=$(median $(awk -v c="$cfg" -v r=$((n * k)) '$1 == c { print ($4 - $3) / r / 1000 }' "$m"))
  done
}

e_fmt() {  # e_fmt NS ROWS: "µs/row"
  awk -v ns="$1" -v n="$2" 'BEGIN { v = ns / n / 1000; printf (v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f"), v }'
}

part_e() {
  local r n k op cfg i order sizes wall_ns cpu_ns
  IFS=, read -r -a sizes <<<"$E_SIZES"
  foreign_start
  mkdir -p "$OUT/e"
  for cfg in "${E_CONFIGS[@]}"; do e_setup "$cfg"; done
  local nc=${#E_CONFIGS[@]}
  for ((r = 1; r <= E_ROUNDS; r++)); do
    for n in "${sizes[@]}"; do
      k=$((E_ROWS / n))
      ((k > E_STATEMENTS)) && k=$E_STATEMENTS
      ((k < 1)) && k=1
      for op in insert delete; do
        order=()
        for ((i = 0; i < nc; i++)); do order+=("${E_CONFIGS[(i + r + n) % nc]}"); done
        for cfg in "${order[@]}"; do
          read -r wall_ns cpu_ns _ <<<"$(e_measure "$cfg" "$op" "$n" "$k" "$r")"
          E_WALL[$cfg,$op,$n,$r]=$(e_fmt "$wall_ns" $((n * k)))
          E_CPU[$cfg,$op,$n,$r]=$(e_fmt "$cpu_ns" $((n * k)))
        done
        log "E: round $r/$E_ROUNDS, $op of $n rows x $k: µs/row wall (cpu) $(for cfg in "${E_CONFIGS[@]}"; do
          printf '%s %s (%s)  ' "$cfg" "${E_WALL[$cfg,$op,$n,$r]}" "${E_CPU[$cfg,$op,$n,$r]}"; done)"
      done
    done
  done
  local asizes
  IFS=, read -r -a asizes <<<"$E_ASYNC_SIZES"
  for n in "${asizes[@]}"; do
    log "E: statements of $n rows with synchronous_commit=off, $E_ASYNC_BLOCKS blocks per configuration"
    e_async "$n"
  done
  e_teardown

  # Medians over the rounds.
  local -A wall=() cpu=()
  for cfg in "${E_CONFIGS[@]}"; do
    for n in "${sizes[@]}"; do
      for op in insert delete; do
        local ws=() cs=()
        for ((r = 1; r <= E_ROUNDS; r++)); do ws+=("${E_WALL[$cfg,$op,$n,$r]}"); cs+=("${E_CPU[$cfg,$op,$n,$r]}"); done
        wall[$cfg,$op,$n]=$(median "${ws[@]}")
        cpu[$cfg,$op,$n]=$(median "${cs[@]}")
      done
    done
  done
  {
    echo "## E. Statements that change many rows: cost per row"
    echo
    echo "One session runs statements of N rows into \`channel_members\`, each its own transaction with a durable commit (synchronous_commit=on, fsync on): INSERTs of a new channel with N members (${E_ROWS} rows or ${E_STATEMENTS} statements per measurement, whichever is fewer), then DELETEs of those channels. Medians of $E_ROUNDS rounds; configurations interleaved in rotating order, each measurement after a CHECKPOINT."
    echo
    echo "**Wall time per row**, µs (rows/s in brackets): what the application waits, commit included."
    echo
    printf '| statement | rows |'; for cfg in "${E_CONFIGS[@]}"; do printf ' %s |' "${E_LABEL[$cfg]}"; done; echo
    printf '|---|---|'; for cfg in "${E_CONFIGS[@]}"; do printf -- '---|'; done; echo
    for op in insert delete; do
      for n in "${sizes[@]}"; do
        printf '| %s | %s |' "${op^^}" "$n"
        for cfg in "${E_CONFIGS[@]}"; do
          printf ' %s (%s) |' "${wall[$cfg,$op,$n]}" "$(awk -v u="${wall[$cfg,$op,$n]}" 'BEGIN { printf "%.0f", 1e6 / u }')"
        done
        echo
      done
    done
    echo
    echo "**CPU time of the writing backend per row**, µs, and what the triggers add to it over no triggers (row → statement: how many times less the statement triggers add)."
    echo
    printf '| statement | rows |'; for cfg in "${E_CONFIGS[@]}"; do printf ' %s |' "${E_LABEL[$cfg]}"; done
    echo ' added: row → statement | added while a sidecar waits: row → statement |'
    printf '|---|---|'; for cfg in "${E_CONFIGS[@]}"; do printf -- '---|'; done; echo '---|---|'
    for op in insert delete; do
      for n in "${sizes[@]}"; do
        printf '| %s | %s |' "${op^^}" "$n"
        for cfg in "${E_CONFIGS[@]}"; do printf ' %s |' "${cpu[$cfg,$op,$n]}"; done
        awk -v z="${cpu[none,$op,$n]}" -v a="${cpu[row,$op,$n]}" -v b="${cpu[stmt,$op,$n]}" \
            -v c="${cpu[row+w,$op,$n]}" -v d="${cpu[stmt+w,$op,$n]}" 'function add(x, y) {
              return sprintf("%s → %s (%s)", f(x - z), f(y - z), y - z > 0.005 ? sprintf("%.1f×", (x - z) / (y - z)) : "–") }
            function f(v) { return sprintf(v < 10 && v > -10 ? "%.2f" : "%.1f", v) }
            BEGIN { printf " %s | %s |\n", add(a, b), add(c, d) }'
      done
    done
    echo
    echo "**Small statements with synchronous_commit=off**: CPU time of the writing backend per row, µs (medians of $E_ASYNC_BLOCKS blocks of 300 rows, or 20 statements, per configuration, the configurations in turn). With the commit's flush out of the way, what the triggers cost a statement of a few rows shows."
    echo
    printf '| statement | rows |'; for cfg in "${E_CONFIGS[@]}"; do printf ' %s |' "${E_LABEL[$cfg]}"; done
    echo ' added: row → statement | added while a sidecar waits: row → statement |'
    printf '|---|---|'; for cfg in "${E_CONFIGS[@]}"; do printf -- '---|'; done; echo '---|---|'
    for op in insert delete; do
      for n in "${asizes[@]}"; do
        printf '| %s | %s |' "${op^^}" "$n"
        for cfg in "${E_CONFIGS[@]}"; do printf ' %.2f |' "${E_ASYNC[$cfg,$op,$n]}"; done
        awk -v z="${E_ASYNC[none,$op,$n]}" -v a="${E_ASYNC[row,$op,$n]}" -v b="${E_ASYNC[stmt,$op,$n]}" \
            -v c="${E_ASYNC[row+w,$op,$n]}" -v d="${E_ASYNC[stmt+w,$op,$n]}" 'function add(x, y) {
              return sprintf("%.2f → %.2f (%s)", x - z, y - z, y - z > 0.005 ? sprintf("%.1f×", (x - z) / (y - z)) : "–") }
            BEGIN { printf " %s | %s |\n", add(a, b), add(c, d) }'
      done
    done
    echo
    echo "Other processes on the machine used about $(foreign_pct)% CPU (100% = one core, of $(nproc)00%) on average during part E; the wall times move with the disk's flush time and that load, the CPU times much less. Raw figures per round: \`e/\` in the run's directory."
    echo
  } >>"$OUT/report.md"
}
