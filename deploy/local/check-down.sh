#!/usr/bin/env bash
# After `make stack-down`: prove nothing of the stack is left (no Asterisk or
# SIPp process, no mount in the Asterisk root, no private PostgreSQL of this
# checkout, no Kamailio of a NODES=2 stack). Exits 1 and lists what is left otherwise.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
left=()
for p in /proc/[0-9]*; do
    r="$(readlink "$p/root" 2>/dev/null || true)"
    [ "$r" = "$ASTERISK_ROOT" ] && left+=("process ${p#/proc/} running in $ASTERISK_ROOT: $(tr '\0' ' ' <"$p/cmdline")")
done
while read -r _ mnt _; do
    case "$mnt" in "$ASTERISK_ROOT"/*) left+=("mount $mnt");; esac
done </proc/mounts
if pgrep -f "kamailio .*-f $KAMAILIO_DIR/" >/dev/null; then
    left+=("Kamailio processes of $RUN: $(pgrep -f "kamailio .*-f $KAMAILIO_DIR/" | tr '\n' ' ')")
fi
if pgrep -f "sipp .*$RUN" >/dev/null; then left+=("SIPp processes of $RUN: $(pgrep -f "sipp .*$RUN" | tr '\n' ' ')"); fi
if [ -z "${STACK_SHARED_PG:-}" ] && [ -f "$PGDIR/data/postmaster.pid" ] && kill -0 "$(head -1 "$PGDIR/data/postmaster.pid")" 2>/dev/null; then
    left+=("private PostgreSQL still running ($PGDIR)")
fi
if [ ${#left[@]} -gt 0 ]; then
    printf 'stack: left behind after stack-down: %s\n' "${left[@]}" >&2
    exit 1
fi
echo "stack: down, nothing left behind (no process in the Asterisk root, no mount, no SIPp, no Kamailio, no private PostgreSQL)"
