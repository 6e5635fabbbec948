#!/usr/bin/env bash
# The Debian package: built by CPack from this build directory, its contents and control data
# checked, lintian without errors, and (as root, where dpkg may) installed, removed and purged
# for real: removal keeps /etc/membership-notifier/env, purge drops it.
# Usage: package_check.sh BUILD_DIR
set -euo pipefail
build=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail() { echo "package_check: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$out" >"$out/cpack.log" 2>&1) || { cat "$out/cpack.log"; fail "cpack failed"; }
deb=$(ls "$out"/membership-notifier_*_amd64.deb 2>/dev/null | head -1)
[[ -n $deb ]] || fail "no package in $out"

contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/membership-notifier ./usr/lib/systemd/system/membership-notifier.service \
         ./usr/share/man/man1/membership-notifier.1.gz ./usr/share/membership-notifier/sql/up.sql \
         ./usr/share/membership-notifier/sql/down.sql ./usr/share/doc/membership-notifier/README.md \
         ./usr/share/doc/membership-notifier/docs/operating.md ./usr/share/doc/membership-notifier/examples/env \
         ./usr/share/doc/membership-notifier/copyright ./usr/share/doc/membership-notifier/changelog.gz; do
  grep -qxF "$f" <<<"$contents" || fail "the package lacks $f"
done
grep -q '^\./etc/' <<<"$contents" && fail "the package ships files in /etc (the settings are the operator's)"

depends=$(dpkg-deb -f "$deb" Depends)
for d in libpq5 libpqxx libjwt0 libssl3 libsystemd0 init-system-helpers; do
  grep -q "$d" <<<"$depends" || fail "Depends lacks $d: $depends"
done
dpkg-deb -e "$deb" "$out/control"
for s in postinst prerm postrm; do [[ -x $out/control/$s ]] || fail "no $s"; done

dpkg-deb -x "$deb" "$out/root"
unit=$out/root/usr/lib/systemd/system/membership-notifier.service
grep -q '^ExecStart=/usr/bin/membership-notifier serve$' "$unit" || fail "the unit does not run /usr/bin/membership-notifier"
grep -q '/usr/local' "$unit" && fail "the unit names /usr/local"
"$out/root/usr/bin/membership-notifier" --version | grep -q '^membership-notifier ' || fail "the packaged binary does not run"
zcat "$out/root/usr/share/man/man1/membership-notifier.1.gz" | grep -q '^\.TH MEMBERSHIP-NOTIFIER' || fail "the man page is not one"

if command -v lintian >/dev/null; then
  errors=$(lintian --tag-display-limit 0 "$deb" 2>&1 | grep '^E:' || true)
  [[ -z $errors ]] || fail "lintian: $errors"
fi

# A real install, where it is safe: as root with dpkg, and nothing of ours installed already.
if [[ $(id -u) == 0 ]] && command -v dpkg >/dev/null && ! dpkg -s membership-notifier >/dev/null 2>&1 \
   && [[ ! -e /etc/membership-notifier ]]; then
  dpkg -i "$deb" >"$out/install.log" 2>&1 || { cat "$out/install.log"; fail "dpkg -i failed"; }
  [[ -f /etc/membership-notifier/env ]] || fail "installing made no /etc/membership-notifier/env"
  [[ $(stat -c %a /etc/membership-notifier/env) == 640 ]] || fail "the settings file is not 0640"
  echo "# the operator's edit" >>/etc/membership-notifier/env
  /usr/bin/membership-notifier --version >/dev/null || fail "the installed binary does not run"
  dpkg -r membership-notifier >"$out/remove.log" 2>&1 || { cat "$out/remove.log"; fail "dpkg -r failed"; }
  grep -q "the operator's edit" /etc/membership-notifier/env || fail "removal did not keep the settings"
  [[ ! -e /usr/bin/membership-notifier ]] || fail "removal left the binary"
  dpkg -P membership-notifier >"$out/purge.log" 2>&1 || { cat "$out/purge.log"; fail "dpkg -P failed"; }
  [[ ! -e /etc/membership-notifier ]] || fail "purge left /etc/membership-notifier"
  echo "package_check: installed, removed (settings kept) and purged"
fi
echo "package_check: $(basename "$deb") OK"
