#!/usr/bin/env bash
# Checks every Debian package weft needs to build, test, benchmark and demo, and installs the
# missing ones with apt-get when run as root. Otherwise prints the exact command and exits 1.
# Usage: scripts/deps.sh [build|bench]   (build: what `make check`/`make demo` need; bench: + peers)
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config git clang llvm libclang-rt-14-dev clang-format
  libuv1-dev libcurl4-openssl-dev libxml2-dev libjansson-dev libmicrohttpd-dev
  zlib1g-dev libyaml-dev libxxhash-dev
  redis-server postgresql libhiredis-dev libpq-dev libsqlite3-dev
)
bench_pkgs=(
  mawk goaccess nginx-light hyperfine parallel python3 python3-aiohttp python3-requests
  python3-bs4 curl
)

want=("${build_pkgs[@]}")
[ "${1:-build}" = bench ] && want+=("${bench_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

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
