#!/usr/bin/env bash
# node.sh stop|start|kill NAME: one Asterisk node of a running NODES=2 stack (docs/scale.md).
#   stop   `core stop now`, as an operator would (then SIGKILL if it lingers)
#   kill   SIGKILL at once: the node vanishes as in a crash (no BYE, no SIP answer)
#   start  start it again with the configuration stack-up rendered; returns once its AMI
#          says FullyBooted (Kamailio's next OPTIONS ping brings it back into the dispatch)
# Same environment as stack-up (ASTERISK_ROOT, STACK_RUN_DIR).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cmd="${1:-}" name="${2:-}"
[ -n "$name" ] && [ -d "$ASTERISK_ROOT$AST_ETC-$name" ] || die "usage: node.sh stop|start|kill NAME (a node of a NODES=2 stack: ${NODE_NAMES[*]})"
case "$cmd" in
    stop|kill)
        node_stop "$name" "$cmd"
        if [ "$cmd" = kill ]; then say "node $name: killed"; else say "node $name: stopped"; fi ;;
    start)
        if asterisk_pid "$name" >/dev/null; then say "node $name: already running"; exit 0; fi
        node_start "$name"
        port="$(sed -n 's/^port = //p' "$ASTERISK_ROOT$AST_ETC-$name/manager.conf" | head -1)"
        user="$(sed -n 's/^SWITCHBOARD_AMI_USERNAME=//p' "$RUN/stack.env")"
        python3 "$REPO/deploy/local/wait_ami.py" 127.0.0.1 "$port" "$user" "$RUN/ami.secret" 60 \
            || { tail -20 "$RUN/asterisk-$name.console.log" >&2; die "node $name did not boot"; }
        say "node $name: started (AMI 127.0.0.1:$port)" ;;
    *) die "usage: node.sh stop|start|kill NAME" ;;
esac
