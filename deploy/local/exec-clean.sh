#!/usr/bin/env bash
# exec-clean.sh CMD ARGS...: run CMD with no inherited descriptor above 2, so a
# daemon started by the stack scripts holds no caller's lock file or CI pipe.
for fd in /proc/$$/fd/*; do
    n=${fd##*/}
    [ "$n" -gt 2 ] && eval "exec $n>&-"
done
exec "$@"
