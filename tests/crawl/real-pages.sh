#!/usr/bin/env bash
# weft crawl on real pages nobody here wrote: the HTML files Debian packages install under /usr
# (documentation, node and python package docs, templates), served by nginx (gzip on) on a
# loopback port this script starts and stops; crawled in the three modes, and every title and
# description compared with python3's html.parser (tests/crawl/real_pages_ref.py).
# Skipped, saying why, where nginx is missing or the machine has fewer than 20 such files.
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
command -v nginx >/dev/null || { echo "SKIP: nginx not installed"; exit 0; }
dir=$(mktemp -d /tmp/weft-test-real-pages.XXXXXX)
chmod 755 "$dir"
ngx=
trap '[ -n "$ngx" ] && kill "$ngx" 2>/dev/null && wait "$ngx" 2>/dev/null; rm -rf "$dir"' EXIT
(cd /usr && find share lib libexec -xdev \( -name '*.html' -o -name '*.htm' \) -type f \
  -size -4M 2>/dev/null | LC_ALL=C sort | head -2000) > "$dir/files.txt"
n=$(wc -l < "$dir/files.txt")
[ "$n" -ge 20 ] || { echo "SKIP: only $n HTML files under /usr"; exit 0; }
source "$(dirname "$0")/nginx.inc"
nginx_start "$dir" "    access_log off;
    types { text/html html htm; }
    default_type application/octet-stream;
    gzip on;
    gzip_min_length 256;" "        listen 127.0.0.1:@PORT@;
        root /usr;" "http://127.0.0.1:@PORT@/$(head -1 "$dir/files.txt")"
sed "s|^|http://127.0.0.1:$port/|" "$dir/files.txt" > "$dir/urls.txt"
"$weft" crawl --mode all -q --no-progress --ignore-robots --jsonl "$dir/out.jsonl" "$dir/urls.txt" \
  > "$dir/crawl.out" || { cat "$dir/crawl.out"; echo "FAIL: weft crawl exit $?"; exit 1; }
[ "$(wc -l < "$dir/out.jsonl")" -eq $((3 * n)) ] || { echo "FAIL: records missing"; exit 1; }
python3 "$src/tests/crawl/real_pages_ref.py" "$dir/out.jsonl"
