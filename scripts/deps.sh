#!/usr/bin/env bash
# Checks every Debian package weft needs to build, test, benchmark and demo, and installs the
# missing ones with apt-get when run as root. Otherwise prints the exact command and exits 1.
# Usage: scripts/deps.sh [build|bench]   (build: what `make check`/`make demo` need; bench: + peers)
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config git clang llvm libclang-rt-14-dev clang-format
  libuv1-dev libcurl4-openssl-dev libxml2-dev libjansson-dev libmicrohttpd-dev
  zlib1g-dev liblzma-dev libbz2-dev libzstd-dev libyaml-dev libxxhash-dev
  redis-server postgresql libhiredis-dev libpq-dev libsqlite3-dev sqlite3
  python3-prometheus-client chromium nodejs
)
bench_pkgs=(
  mawk goaccess nginx-light hyperfine parallel python3 python3-aiohttp python3-requests
  python3-bs4 curl wrk python3-fastapi python3-uvicorn python3-asyncpg python3-redis python3-httpx
)

want=("${build_pkgs[@]}")
[ "${1:-build}" = bench ] && want+=("${bench_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing+=("$p")
done
# npm: Debian's package, unless the installed nodejs brings its own (NodeSource's does).
command -v npm >/dev/null || missing+=(npm)

# The browser test's npm packages (playwright-core, pinned by tests/browser/package-lock.json),
# installed exactly as locked; again only when the lock changed.
npm_ci() {
  local d
  d=$(cd "$(dirname "$0")/.." && pwd)/tests/browser
  [ -f "$d/package-lock.json" ] && command -v npm >/dev/null || return 0
  [ "$d/node_modules/.package-lock.json" -nt "$d/package-lock.json" ] && return 0
  echo "weft: npm ci in tests/browser" >&2
  (cd "$d" && npm ci --no-audit --no-fund >/dev/null) ||
    echo "weft: npm ci failed; the dashboard test will be skipped" >&2
}
[ ${#missing[@]} -eq 0 ] && { npm_ci; exit 0; }

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "weft: missing Debian packages; run as root:" >&2
  echo "  apt-get update && $cmd" >&2
  exit 1
fi
echo "weft: installing missing packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
  { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
npm_ci
