#!/usr/bin/env bash
# PostgreSQL for the local stack. Prints the DSN to use on stdout.
#  - SWITCHBOARD_DSN set and reachable: use it as is.
#  - else: a private cluster in $PGDIR (lib.sh: /var/tmp/switchboard-pg/<checkout>, initdb +
#    pg_ctl as user postgres), on a free port.
# `postgres.sh stop` stops the private cluster (if this repo started one).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"

reachable() {
    python3 - "$1" <<'PY'
import asyncio, sys
try:
    import asyncpg
except ImportError:
    sys.exit(2)
async def main():
    c = await asyncpg.connect(sys.argv[1], timeout=5)
    await c.fetchval("select 1")
    await c.close()
try:
    asyncio.run(main())
except Exception as e:
    print(f"postgres: {e}", file=sys.stderr)
    sys.exit(1)
PY
}

# Close inherited descriptors above 2 so the server holds no caller's lock or pipe.
as_pg() { (cd / && bash "$REPO/deploy/local/exec-clean.sh" runuser -u postgres -- "$@"); }

if [ "${1:-start}" = "stop" ]; then
    if [ -f "$PGDIR/data/postmaster.pid" ]; then
        as_pg "$BIN/pg_ctl" -D "$PGDIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
        echo "stack: private PostgreSQL stopped" >&2
    fi
    exit 0
fi

export PATH="$REPO/.venv/bin:$PATH"
if [ -n "${SWITCHBOARD_DSN:-}" ]; then
    if reachable "$SWITCHBOARD_DSN"; then
        echo "$SWITCHBOARD_DSN"
        exit 0
    fi
    echo "stack: SWITCHBOARD_DSN is set but not reachable: starting a private cluster instead" >&2
fi

[ -n "$BIN" ] && [ -x "$BIN/initdb" ] || die "PostgreSQL server binaries not found (apt-get install postgresql)"
id postgres >/dev/null 2>&1 || die "no 'postgres' user (installed by Debian's postgresql package)"
mkdir -p "$PGDIR"
chmod 755 "$(dirname "$PGDIR")"
chown postgres "$PGDIR"
if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
    rm -rf "$PGDIR/data"
    as_pg "$BIN/initdb" -D "$PGDIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$PGDIR/initdb.log" 2>&1 \
        || { cat "$PGDIR/initdb.log" >&2; die "initdb failed"; }
fi
if [ -f "$PGDIR/data/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
    PORT="$(sed -n 4p "$PGDIR/data/postmaster.pid")"
else
    rm -f "$PGDIR/data/postmaster.pid"
    PORT="$(free_port 55432)"
    mkdir -p "$PGDIR/sock" && chown postgres "$PGDIR/sock"
    as_pg "$BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 \
        -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PGDIR/sock -c fsync=on" start >/dev/null \
        || { tail -20 "$PGDIR/server.log" >&2; die "private PostgreSQL did not start"; }
fi
DSN="postgresql://postgres@127.0.0.1:$PORT/switchboard"
as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='switchboard'" | grep -q 1 \
    || as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE switchboard" >/dev/null
echo "stack: private PostgreSQL on 127.0.0.1:$PORT ($PGDIR)" >&2
echo "$DSN"
