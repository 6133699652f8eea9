#!/usr/bin/env bash
# Stop the Asterisk of the local stack (the one Asterisk, or every node of a NODES=2
# stack, whatever NODES says now) and unmount what stack-up mounted.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
QUIET="${1:-}"
if pid="$(asterisk_pid)"; then
    chroot "$ASTERISK_ROOT" /usr/sbin/asterisk -C "$AST_ETC/asterisk.conf" -rx "core stop now" >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; sleep 1; fi
    [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    [ -n "$QUIET" ] || say "Asterisk stopped"
fi
for name in $(running_nodes); do
    if asterisk_pid "$name" >/dev/null; then
        node_stop "$name"
        [ -n "$QUIET" ] || say "Asterisk node $name stopped"
    fi
done
# Any other process still running inside the root (e.g. a crashed restart)
for p in /proc/[0-9]*; do
    r="$(readlink "$p/root" 2>/dev/null || true)"
    if [ "$r" = "$ASTERISK_ROOT" ]; then kill -KILL "${p#/proc/}" 2>/dev/null || true; fi
done
rm -f "$RUN/asterisk.launcher.pid"
while mountpoint -q "$ASTERISK_ROOT$AST_MEDIA" 2>/dev/null; do umount "$ASTERISK_ROOT$AST_MEDIA" || umount -l "$ASTERISK_ROOT$AST_MEDIA"; done
if mountpoint -q "$ASTERISK_ROOT/proc" 2>/dev/null; then umount "$ASTERISK_ROOT/proc" || umount -l "$ASTERISK_ROOT/proc"; fi
exit 0
