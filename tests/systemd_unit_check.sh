#!/usr/bin/env bash
# The unit must pass `systemd-analyze verify` with no output at all: verify prints warnings
# but still exits 0 on unknown keys, so any output fails this check.
set -euo pipefail
binary=$1
unit_dir=$(mktemp -d)
trap 'rm -rf "$unit_dir"' EXIT
sed "s|/usr/local/bin/membership-notifier|$binary|g" \
  "$(dirname "$0")/../systemd/membership-notifier.service" > "$unit_dir/membership-notifier.service"
out=$(systemd-analyze verify "$unit_dir/membership-notifier.service" 2>&1 || true)
if [[ -n "$out" ]]; then
  echo "systemd-analyze verify complained:"; echo "$out"; exit 1
fi
# The unit's hardening, scored offline; a regression past "OK" fails.
score=$(systemd-analyze security --offline=true "$unit_dir/membership-notifier.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
echo "exposure level: ${score:-unknown}"
awk -v s="${score:-10}" 'BEGIN { exit !(s + 0 <= 2.0) }' || { echo "exposure $score is above 2.0"; exit 1; }
echo "systemd unit verifies cleanly"
