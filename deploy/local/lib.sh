# Shared helpers for the local stack scripts (sourced).
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# STACK_RUN_DIR: a second stack of the same checkout (make test runs two side by side; tests/e2e/two_nodes.py) keeps its
# own run folder (stack.env, secrets, logs, SIPp); default: run/ of the checkout.
RUN="${STACK_RUN_DIR:-$REPO/run}"
ASTERISK_ROOT="${ASTERISK_ROOT:-/var/cache/switchboard/asterisk-sid}"
AST_ETC=/etc/asterisk-switchboard
AST_MEDIA=/var/lib/switchboard/recordings
# The private PostgreSQL cluster lives outside the checkout: user postgres may not
# traverse the checkout's parents (a `mktemp -d` clone is 0700). One per checkout.
# STACK_PG_DIR (or SWITCHBOARD_PG_DIR, which the service's settings refuse when exported): another cluster.
PGDIR="${STACK_PG_DIR:-${SWITCHBOARD_PG_DIR:-/var/tmp/switchboard-pg/$(printf %s "$REPO" | md5sum | cut -c1-12)}}"
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

# Several Asterisk nodes behind Kamailio (NODES=2, docs/scale.md): node NAME runs from the
# same root with its own configuration (AST_ETC-NAME) and run, database, spool and log
# folders (/var/run/asterisk-NAME...). NODES unset or 1: the one Asterisk as always.
NODES="${NODES:-1}"
NODE_NAMES=(a b)
KAMAILIO_DIR="$RUN/kamailio"

asterisk_pid() {  # asterisk_pid [NODE]: the pid of the stack's Asterisk (or of node NODE)
    # /var/run in the root is an absolute link to /run: read the root's own /run, not the host's.
    local pf="$ASTERISK_ROOT/run/asterisk${1:+-$1}/asterisk.pid" pid
    [ -s "$pf" ] || return 1
    pid="$(cat "$pf")"
    # and only an Asterisk running in THIS root: a copied root carries the pid file of its source
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q asterisk "/proc/$pid/comm" 2>/dev/null \
        && [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$ASTERISK_ROOT" ] && echo "$pid"
}

running_nodes() {  # the names of the nodes that have a run folder in the root (running or not)
    local d
    for d in "$ASTERISK_ROOT"/run/asterisk-*; do
        [ -d "$d" ] && echo "${d##*/asterisk-}"
    done
    return 0
}

node_start() {  # node_start NAME: start node NAME in the background (its config is rendered)
    local name="$1"
    mkdir -p "$ASTERISK_ROOT/run/asterisk-$name"
    setsid bash "$REPO/deploy/local/exec-clean.sh" chroot "$ASTERISK_ROOT" /usr/sbin/asterisk -f \
        -C "$AST_ETC-$name/asterisk.conf" </dev/null >>"$RUN/asterisk-$name.console.log" 2>&1 &
    echo $! >"$RUN/asterisk-$name.launcher.pid"
}

node_stop() {  # node_stop NAME [kill]: stop node NAME (kill: SIGKILL at once, as a crash)
    local name="$1" pid
    pid="$(asterisk_pid "$name")" || return 0
    if [ "${2:-}" = kill ]; then
        kill -KILL "$pid" 2>/dev/null || true
    else
        chroot "$ASTERISK_ROOT" /usr/sbin/asterisk -C "$AST_ETC-$name/asterisk.conf" -rx "core stop now" >/dev/null 2>&1 || true
        for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
        [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    fi
    for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    rm -f "$RUN/asterisk-$name.launcher.pid"
}

kamailio_pid() {
    local pid
    [ -s "$KAMAILIO_DIR/kamailio.pid" ] || return 1
    pid="$(cat "$KAMAILIO_DIR/kamailio.pid")"
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q kamailio "/proc/$pid/comm" 2>/dev/null && echo "$pid"
}

kamailio_stop() {  # stop the stack's Kamailio (and every child of it): TERM, then KILL
    local pid
    if pid="$(kamailio_pid)"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
        [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    fi
    # children left by a killed main process: they run this stack's configuration file
    pkill -KILL -f "kamailio .*-f $KAMAILIO_DIR/kamailio.cfg" 2>/dev/null || true
    rm -f "$KAMAILIO_DIR/kamailio.pid"
}
