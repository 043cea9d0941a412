#!/usr/bin/env bash
# weft crawl over HTTPS + HTTP/2 against nginx (a certificate made here by openssl, nginx on a
# loopback port this script starts and stops): certificate checks (--cacert, CURL_CA_BUNDLE,
# --insecure; none of them: a tls error), and multiplexing, counted by nginx itself ($connection
# in its access log): 200 URLs of one host in async mode travel on at most 2 connections (curl
# may open a second before the first has said it speaks HTTP/2), in threads mode (5 workers,
# a connection each) on at most 5.
# Skipped, saying why, where nginx or openssl is missing.
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
command -v nginx >/dev/null || { echo "SKIP: nginx not installed"; exit 0; }
command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 0; }
dir=$(mktemp -d /tmp/weft-test-tls-http2.XXXXXX)
chmod 755 "$dir"
ngx=
trap '[ -n "$ngx" ] && kill "$ngx" 2>/dev/null && wait "$ngx" 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 ||
  { echo "SKIP: openssl cannot make a certificate"; exit 0; }
mkdir -p "$dir/www" "$dir/tmp"
for i in $(seq 0 199); do
  printf '<!DOCTYPE html><html><head><title>Page %d</title></head><body>x</body></html>\n' "$i" > "$dir/www/$i.html"
done
chmod -R a+rX "$dir/www"
source "$(dirname "$0")/nginx.inc"
nginx_start "$dir" "    log_format conn '\$connection \$server_protocol \$request_uri';
    access_log $dir/access.log conn;
    default_type text/html;" "        listen 127.0.0.1:@PORT@ ssl http2;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        http2_max_concurrent_streams 128;
        root $dir/www;" "--cacert $dir/cert.pem https://127.0.0.1:@PORT@/0.html"
for i in $(seq 0 199); do echo "https://127.0.0.1:$port/$i.html"; done > "$dir/urls.txt"
head -3 "$dir/urls.txt" > "$dir/few.txt"
crawl() { "$weft" crawl -q --no-progress --no-summary --ignore-robots --attempts 1 --jsonl - "$@"; }

# Certificates: not trusted without a CA; trusted with --cacert or CURL_CA_BUNDLE; --insecure.
out=$(env -u CURL_CA_BUNDLE -u SSL_CERT_FILE "$weft" crawl -q --no-progress --no-summary \
  --ignore-robots --attempts 1 --jsonl - "$dir/few.txt" || true)
[ "$(grep -c '"error_kind":"tls"' <<<"$out")" = 3 ] || fail "self-signed accepted without a CA: $out"
for how in "--cacert $dir/cert.pem" "--insecure"; do
  # shellcheck disable=SC2086
  out=$(crawl $how "$dir/few.txt") || fail "$how: exit $?: $out"
  [ "$(grep -c '"title":"Page' <<<"$out")" = 3 ] || fail "$how: $out"
done
out=$(CURL_CA_BUNDLE=$dir/cert.pem crawl "$dir/few.txt") || fail "CURL_CA_BUNDLE: $out"
[ "$(grep -c '"title":"Page' <<<"$out")" = 3 ] || fail "CURL_CA_BUNDLE: $out"

# Multiplexing, as nginx saw it: distinct connections carrying the 200 requests.
for m in async threads; do
  : > "$dir/access.log"
  kill -USR1 "$(cat "$dir/nginx.pid")" # reopen the log
  sleep 0.2
  out=$(crawl --mode $m --cacert "$dir/cert.pem" "$dir/urls.txt") || fail "$m: exit $?"
  [ "$(grep -c '"title":"Page' <<<"$out")" = 200 ] || fail "$m: not every page"
  for _ in $(seq 50); do [ "$(wc -l < "$dir/access.log")" -ge 200 ] && break; sleep 0.1; done
  grep -q ' HTTP/2.0 ' "$dir/access.log" || fail "$m: HTTP/2 not negotiated"
  conns=$(awk '{ print $1 }' "$dir/access.log" | sort -u | wc -l)
  max=$([ $m = async ] && echo 2 || echo 5)
  [ "$conns" -le "$max" ] || fail "$m mode: 200 HTTP/2 requests on $conns connections (at most $max)"
  echo "$m: 200 HTTP/2 requests on $conns connection(s)"
done
echo "tls-http2: ok"
