# Shared helpers for the local stack scripts (sourced).
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# STACK_RUN_DIR: a second stack of the same checkout (make test runs two side by side) keeps its
# own run folder (stack.env, secrets, logs, SIPp); default: run/ of the checkout.
RUN="${STACK_RUN_DIR:-$REPO/run}"
ASTERISK_ROOT="${ASTERISK_ROOT:-/var/cache/switchboard/asterisk-sid}"
AST_ETC=/etc/asterisk-switchboard
AST_MEDIA=/var/lib/switchboard/recordings
# The private PostgreSQL cluster lives outside the checkout: user postgres may not
# traverse the checkout's parents (a `mktemp -d` clone is 0700). One per checkout.
PGDIR="${SWITCHBOARD_PG_DIR:-/var/tmp/switchboard-pg/$(printf %s "$REPO" | md5sum | cut -c1-12)}"
mkdir -p "$RUN"

say() { echo "stack: $*"; }
die() { echo "stack: ERROR: $*" >&2; exit 1; }

port_free() {  # port_free PORT [udp]
    python3 - "$1" "${2:-tcp}" <<'PY'
import socket, sys
port, kind = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
if kind != "udp":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like Asterisk: TIME_WAIT is no conflict
try:
    s.bind(("127.0.0.1", port))
except OSError:
    sys.exit(1)
PY
}

free_port() {  # free_port START [udp]
    local p="$1"
    while ! port_free "$p" "${2:-tcp}"; do p=$((p + 1)); done
    echo "$p"
}

secret() {  # secret FILE: make a random secret once, keep it
    local f="$1"
    if [ ! -s "$f" ]; then
        (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$f")
    fi
    chmod 600 "$f"
}

asterisk_pid() {
    # /var/run in the root is an absolute link to /run: read the root's own /run, not the host's.
    local pf="$ASTERISK_ROOT/run/asterisk/asterisk.pid" pid
    [ -s "$pf" ] || return 1
    pid="$(cat "$pf")"
    # and only an Asterisk running in THIS root: a copied root carries the pid file of its source
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q asterisk "/proc/$pid/comm" 2>/dev/null \
        && [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$ASTERISK_ROOT" ] && echo "$pid"
}
