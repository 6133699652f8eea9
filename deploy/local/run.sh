#!/usr/bin/env bash
# `make run`: bring the local stack up, migrate, and run the service in the
# foreground (Ctrl-C stops it cleanly). Unless DEMO=0, demo agents and callers
# (SIPp) are started too so calls are routed live, at any hour (DEMO_CLOCK, below). The stack stays up after
# Ctrl-C: `make stack-down` takes it down.
# HA=1: two instances (active/standby, docs/ha.md): "a" in the foreground (HTTP
# port 8080) and "b" in the background (8081, log run/standby.log); the first to
# take the lock leads, the other stands by (GET /readyz on each says which).
# An instance that loses the lead exits with status 75 and is started again (as
# a standby), as systemd would do it (deploy/systemd/switchboard-ha.conf).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"
export PATH="$REPO/.venv/bin:$PATH"
bash deploy/local/stack-up.sh
export SWITCHBOARD_CONFIG="$RUN/switchboard.toml"
export SWITCHBOARD_HTTP_PORT="${SWITCHBOARD_HTTP_PORT:-8080}"
switchboard migrate --seed-demo
switchboard agents import deploy/agents.yaml
DEMO_PID=""
# The demo's calls are routed at any hour: unless DEMO_CLOCK=real, a service started while
# the hotline is closed moves its local clock to the next opening (ivr.demo_clock, README).
if [ "${DEMO:-1}" != 0 ] && [ "${DEMO_CLOCK:-open}" != real ]; then
    export SWITCHBOARD_IVR_DEMO_CLOCK=open
    say "demo clock: the hotline is open whatever the hour (ivr.demo_clock=open; DEMO_CLOCK=real keeps the real clock)"
fi
if [ "${DEMO:-1}" != 0 ] && switchboard demo --help >/dev/null 2>&1; then
    setsid switchboard demo </dev/null >"$RUN/demo.log" 2>&1 &
    DEMO_PID=$!
    echo "$DEMO_PID" >"$RUN/demo.pid"
    say "demo agents and callers started (log: run/demo.log)"
fi
# run the service again when it exits with 75 (it lost the lead: it comes back as a standby)
supervised() { local rc; while true; do rc=0; switchboard run || rc=$?; [ "$rc" = 75 ] || return "$rc"; done; }
STANDBY_PID=""
if [ "${HA:-0}" = 1 ]; then
    export SWITCHBOARD_HA_ENABLED=true
    ( export SWITCHBOARD_HTTP_PORT=$((SWITCHBOARD_HTTP_PORT + 1)) SWITCHBOARD_HA_INSTANCE=b \
             SWITCHBOARD_DATABASE_SPOOL_DIR="$RUN/spool-b"
      supervised ) </dev/null >"$RUN/standby.log" 2>&1 &
    STANDBY_PID=$!
    export SWITCHBOARD_HA_INSTANCE=a
    say "HA: standby instance b on http://127.0.0.1:$((SWITCHBOARD_HTTP_PORT + 1))/ (log: run/standby.log)"
fi
cleanup() {
    [ -n "$DEMO_PID" ] && kill -TERM -- "-$DEMO_PID" 2>/dev/null
    [ -n "$STANDBY_PID" ] && pkill -TERM -P "$STANDBY_PID" 2>/dev/null
    rm -f "$RUN/demo.pid"
}
trap cleanup EXIT
say "service starting: http://127.0.0.1:$SWITCHBOARD_HTTP_PORT/ (agent panel, wallboard); Ctrl-C to stop"
say "in another shell: .venv/bin/switchboard --config run/switchboard.toml doctor"
if [ "${HA:-0}" = 1 ]; then supervised; else switchboard run; fi
