#!/usr/bin/env bash
# Bring the local stack down: SIPp peers, the service started by `make run`,
# Kamailio and every Asterisk node of a NODES=2 stack, Asterisk (and its mounts),
# the private PostgreSQL cluster. Idempotent.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for pf in "$RUN"/*.sipp.pid "$RUN"/service.pid "$RUN"/demo.pid; do
    [ -f "$pf" ] || continue
    pid="$(cat "$pf")"; kill -TERM "$pid" 2>/dev/null || true; rm -f "$pf"
done
pkill -f "sipp .*$RUN" 2>/dev/null || true
kamailio_stop
bash "$(dirname "$0")/asterisk-stop.sh"
# STACK_SHARED_PG=1: a second stack that used the first one's PostgreSQL leaves it running
[ -n "${STACK_SHARED_PG:-}" ] || bash "$(dirname "$0")/postgres.sh" stop
rm -f "$RUN/stack.env"
say "down"
