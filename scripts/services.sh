#!/usr/bin/env bash
# Throw-away Redis and PostgreSQL servers on loopback, for tests, demos and benchmarks.
#
#   scripts/services.sh start redis|postgres DIR   start one on a free 127.0.0.1 port, data under
#                                                  DIR; prints its URL once it answers
#   scripts/services.sh restart redis|postgres DIR stop it and start it again on the same port
#                                                  (same data: PostgreSQL keeps its tables)
#   scripts/services.sh stop DIR                   stop everything started under DIR (by pid)
#   scripts/services.sh url redis|postgres DIR     print the URL of a running one
#
# URLs: redis://127.0.0.1:PORT and postgresql://weft@127.0.0.1:PORT/postgres (trust auth, loopback
# only). Per server NAME, DIR holds NAME.pid, NAME.port, NAME.url, NAME.log and the data directory
# NAME/. PostgreSQL runs with fsync=on and synchronous_commit=on (what the order engine's
# acknowledgements rest on); as root its cluster is created and run as `nobody` (initdb refuses
# root), so DIR is made traversable (mode 711). Redis keeps nothing on disk: the order engine
# rebuilds it from the database after a restart. With WEFT_REDIS_AOF=1 in the environment Redis
# keeps an append-only file (fsync always) and a restart reloads it (the broker's tests).
#
# Use from a test, so that servers stop even when the test fails:
#   dir=$(mktemp -d); trap 'scripts/services.sh stop "$dir"; rm -rf "$dir"' EXIT
#   redis=$(scripts/services.sh start redis "$dir") || exit 1
#
# It installs nothing: scripts/deps.sh lists redis-server and postgresql. Stopping kills only the
# pids recorded in DIR, and only while they still run the program started.
set -euo pipefail

die() { echo "services.sh: $*" >&2; exit 1; }
PG_BIN=${PG_BIN:-}
if [ -z "$PG_BIN" ]; then
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/postgres" ] && PG_BIN=$d; done
fi

# A port nothing listens on, from a range away from the usual servers'. Another process may take
# it before we bind, so callers retry on a failed start.
free_port() {
  local p i
  for i in $(seq 1 100); do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  die "no free port found"
}

# alive PID PATTERN: the process runs and its command line contains PATTERN (so a recycled pid
# is never killed).
alive() {
  [ -r "/proc/$1/cmdline" ] && tr "\\0" " " <"/proc/$1/cmdline" | grep -- "$2" >/dev/null
}

wait_gone() { # pid, seconds
  local i
  for i in $(seq 1 $(($2 * 10))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

start_redis() { # dir port
  local dir=$1 port=$2
  command -v redis-server >/dev/null || die "redis-server is not installed (scripts/deps.sh)"
  mkdir -p "$dir/redis"
  local aof=(--appendonly no)
  [ "${WEFT_REDIS_AOF:-}" = 1 ] && aof=(--appendonly yes --appendfsync always)
  setsid redis-server --bind 127.0.0.1 --port "$port" --dir "$dir/redis" --save "" \
    "${aof[@]}" --daemonize no --logfile "$dir/redis.log" --maxclients 4000 \
    </dev/null >/dev/null 2>&1 &
  local pid=$! i
  for i in $(seq 1 100); do
    if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
      echo "$pid" >"$dir/redis.pid"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  return 1
}

start_postgres() { # dir port
  local dir=$1 port=$2 run=()
  [ -x "$PG_BIN/postgres" ] || die "PostgreSQL server binaries not found (scripts/deps.sh)"
  local data=$dir/postgres sock=$dir/pgsock
  mkdir -p "$data" "$sock"
  if [ "$(id -u)" -eq 0 ]; then
    chmod 711 "$dir"
    chown nobody: "$data" "$sock"
    run=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    (cd / && "${run[@]}" "$PG_BIN/initdb" -D "$data" -U weft --auth=trust -E UTF8 \
      --locale=C.UTF-8 >"$dir/initdb.log" 2>&1) || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  (cd / && exec setsid "${run[@]}" "$PG_BIN/postgres" -D "$data" -p "$port" -k "$sock" \
    -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=200 \
    -c shared_buffers=128MB -c logging_collector=off) </dev/null >>"$dir/postgres.log" 2>&1 &
  local pid=$! i
  for i in $(seq 1 300); do
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U weft 2>/dev/null; then
      echo "$pid" >"$dir/postgres.pid"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  return 1
}

url_of() { # name port
  case $1 in
    redis) echo "redis://127.0.0.1:$2" ;;
    postgres) echo "postgresql://weft@127.0.0.1:$2/postgres" ;;
  esac
}

stop_one() { # dir name
  local dir=$1 name=$2 pid sig pat
  [ -f "$dir/$name.pid" ] || return 0
  pid=$(cat "$dir/$name.pid")
  case $name in
    redis) sig=TERM pat=redis-server ;;
    postgres) sig=INT pat=postgres ;; # fast shutdown: roll back sessions, checkpoint, exit
    *) return 0 ;;
  esac
  if alive "$pid" "$pat"; then
    kill -"$sig" "$pid" 2>/dev/null || true
    wait_gone "$pid" 20 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; }
  fi
  rm -f "$dir/$name.pid"
}

start() { # name dir [port]
  local name=$1 dir=$2 port=${3:-} tries
  [ -d "$dir" ] || die "no such directory: $dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/$name.pid" ] && alive "$(cat "$dir/$name.pid")" "$name"; then
    die "$name already runs under $dir (pid $(cat "$dir/$name.pid"))"
  fi
  for tries in 1 2 3 4 5; do
    [ -n "$port" ] || port=$(free_port)
    if "start_$name" "$dir" "$port"; then
      echo "$port" >"$dir/$name.port"
      url_of "$name" "$port" | tee "$dir/$name.url"
      return 0
    fi
    [ -z "${3:-}" ] || break # a fixed port (restart): do not wander
    port=
  done
  tail -n 5 "$dir/$name.log" >&2 2>/dev/null || true
  die "$name did not start (log: $dir/$name.log)"
}

cmd=${1:-}
case $cmd in
  start | restart | url)
    [ $# -eq 3 ] || die "usage: $0 $cmd redis|postgres DIR"
    case $2 in redis | postgres) ;; *) die "unknown service '$2' (redis or postgres)" ;; esac
    ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop DIR" ;;
  *) die "usage: $0 start|restart|url redis|postgres DIR | stop DIR" ;;
esac
case $cmd in
  start) start "$2" "$3" ;;
  restart)
    [ -f "$3/$2.port" ] || die "$2 was never started under $3"
    port=$(cat "$3/$2.port")
    stop_one "$3" "$2"
    start "$2" "$3" "$port"
    ;;
  url)
    [ -f "$3/$2.pid" ] && alive "$(cat "$3/$2.pid")" "$2" || die "$2 does not run under $3"
    cat "$3/$2.url"
    ;;
  stop)
    [ -d "$2" ] || exit 0
    stop_one "$2" redis
    stop_one "$2" postgres
    ;;
esac
