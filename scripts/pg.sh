#!/usr/bin/env bash
# A throwaway PostgreSQL from Debian's `postgresql` package, for the tests:
#   scripts/pg.sh start DIR   initdb in DIR as the `postgres` user, start it on a free
#                             loopback port (fsync off), print its URL
#   scripts/pg.sh stop DIR    stop it (DIR is left for the caller to remove)
# Nothing is downloaded: the binaries are the package's (setup.sh installs it).
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?a directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed (scripts/setup.sh --test installs it)" >&2; exit 1; }

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
      chmod o+x "$(dirname "$dir")"  # the server runs as `postgres`: it must reach DIR
      chown postgres "$dir"
    fi
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log"
    # A free loopback port: try random ones until the server starts on one.
    for attempt in 1 2 3 4 5 6 7 8; do
      port=$(( 20000 + RANDOM % 40000 ))
      if as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start \
           -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off \
               -c full_page_writes=off -c max_connections=400 -c shared_buffers=128MB" >/dev/null; then
        break
      fi
      [ "$attempt" = 8 ] && { cat "$dir/server.log" >&2; exit 1; }
    done
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
