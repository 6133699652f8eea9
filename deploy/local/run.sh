#!/usr/bin/env bash
# `make run`: bring the local stack up, migrate, and run the service in the
# foreground (Ctrl-C stops it cleanly). Unless DEMO=0, demo agents and callers
# (SIPp) are started too so calls are routed live, at any hour (DEMO_CLOCK, below). The stack stays up after
# Ctrl-C: `make stack-down` takes it down.
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
cleanup() { [ -n "$DEMO_PID" ] && kill -TERM -- "-$DEMO_PID" 2>/dev/null; rm -f "$RUN/demo.pid"; }
trap cleanup EXIT
say "service starting: http://127.0.0.1:$SWITCHBOARD_HTTP_PORT/ (agent panel, wallboard); Ctrl-C to stop"
say "in another shell: .venv/bin/switchboard --config run/switchboard.toml doctor"
switchboard run
