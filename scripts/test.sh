#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, and runs every test: unit tests,
# integration tests against throwaway PostgreSQL clusters the tests start themselves, the
# Socket.IO tests with the real socket.io-client, and the systemd unit check.
# Usage: scripts/test.sh [extra ctest arguments, e.g. -R delivery]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
if [[ -f tests/node/package-lock.json ]]; then
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
fi

build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMN_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"
