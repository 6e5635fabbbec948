#!/usr/bin/env bash
# Installs, idempotently, everything the build, the demo and the tests need on Debian 12.
# Only Debian packages (and, for the Socket.IO client tests, the npm registry). g++'s own
# sanitizer runtimes come with build-essential; clang-14 and its runtimes build the libFuzzer
# targets, llvm-14 symbolizes their reports. chromium runs the browser example's test headless.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libpq-dev libpqxx-dev libwebsocketpp-dev libasio-dev
  libspdlog-dev libfmt-dev libgtest-dev
  nlohmann-json3-dev libcli11-dev libjwt-dev libssl-dev libsystemd-dev
  postgresql postgresql-contrib postgresql-client
  python3 curl ca-certificates openssl procps util-linux systemd
  dpkg-dev help2man lintian
  clang-14 libclang-rt-14-dev llvm-14
  chromium
)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian postgresql package starts a cluster of its own on 5432; nothing here needs it,
# every test and the demo run a throwaway cluster of their own.
