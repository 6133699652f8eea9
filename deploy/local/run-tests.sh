#!/usr/bin/env bash
# `make test`: lint, type-check, unit tests, then TEST_SHARDS local stacks (default 3; real
# PostgreSQL, Asterisk 22, SIPp) for the integration, security, end-to-end and browser tests, run
# as that many shards side by side (tests/shard.py: each shard on its own Asterisk, one PostgreSQL
# server).
# Every stack is brought down at the end, pass or fail.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"
export PATH="$REPO/.venv/bin:$PATH"
mkdir -p artifacts

step() { echo; echo "==== $*"; }

step "lint: ruff"
ruff check switchboard tests bench deploy || exit 1
step "types: mypy"
mypy switchboard || exit 1

step "unit tests (pure, no services)"
pytest -q -p no:cacheprovider tests/unit
rc=$?
[ $rc -eq 0 ] || exit $rc

# One `make test` at a time on this machine: the stacks' Asterisk roots are shared cache
# folders. The lock is held on fd 9 for the whole run (children started by Python close it).
exec 9>/tmp/switchboard-e2e.lock
if ! flock -n 9; then
    echo "run-tests: another make test holds /tmp/switchboard-e2e.lock: waiting for it"
    flock 9
fi
export SB_E2E_LOCK_HELD=1

SHARDS="${TEST_SHARDS:-3}"
# stack k > 1: a copy of the first root (${ASTERISK_ROOT}-shardK), its own run folder and ports
# (+100 per stack), the same PostgreSQL server
shard_root() { echo "${ASTERISK_ROOT}-shard$1"; }
shard_run() { echo "$RUN/shard$1"; }

step "local stacks up (PostgreSQL, Asterisk 22 x $SHARDS)"
down() {
    local rc=$? k
    step "local stacks down"
    for k in $(seq "$SHARDS" -1 2); do
        ASTERISK_ROOT="$(shard_root "$k")" STACK_RUN_DIR="$(shard_run "$k")" STACK_SHARED_PG=1 \
            bash "$REPO/deploy/local/stack-down.sh"
    done
    bash "$REPO/deploy/local/stack-down.sh"
    bash "$REPO/deploy/local/check-down.sh" || rc=1
    for k in $(seq "$SHARDS" -1 2); do
        ASTERISK_ROOT="$(shard_root "$k")" STACK_RUN_DIR="$(shard_run "$k")" STACK_SHARED_PG=1 \
            bash "$REPO/deploy/local/check-down.sh" || rc=1
    done
    exit $rc
}
trap down EXIT
bash deploy/local/stack-up.sh || exit 1
val() { sed -n "s/^$1=//p" "$2" | tail -1; }   # val KEY FILE: one setting of a stack.env
ROOT1="$ASTERISK_ROOT"   # (a prefix assignment would see ASTERISK_ROOT already set to the copy)
for k in $(seq 2 "$SHARDS"); do
    mkdir -p "$(shard_run "$k")"
    off=$(( (k - 1) * 100 ))
    STACK_ROOT_FROM="$ROOT1" ASTERISK_ROOT="$(shard_root "$k")" STACK_RUN_DIR="$(shard_run "$k")" \
        SWITCHBOARD_DSN="$(val SWITCHBOARD_DSN "$RUN/stack.env")" \
        STACK_AMI_PORT="$(free_port $(($(val SWITCHBOARD_AMI_PORT "$RUN/stack.env") + off)))" \
        STACK_SIP_PORT="$(free_port $(($(val STACK_SIP_PORT "$RUN/stack.env") + off)) udp)" \
        STACK_TRUNK_OUT_PORT="$(free_port $(($(val STACK_TRUNK_OUT_PORT "$RUN/stack.env") + off)) udp)" \
        bash deploy/local/stack-up.sh || exit 1
done

DIRS=(tests/integration tests/security tests/e2e tests/browser)
step "integration (PostgreSQL), security probe, end-to-end (Asterisk 22 + SIPp) and browser tests: $SHARDS shards"
pids=()
for k in $(seq 1 "$SHARDS"); do
    read -r -a files <<<"$(python3 tests/shard.py "$SHARDS" "$k" "${DIRS[@]}")"
    stack_env="$RUN/stack.env"; [ "$k" -eq 1 ] || stack_env="$(shard_run "$k")/stack.env"
    args=(-v -p no:cacheprovider -rA --durations=25 --junitxml="artifacts/junit-$k.xml" "${files[@]}")
    # each shard's pytest sees its own stack's settings (and nothing of the other's)
    if [ "$k" -eq 1 ]; then   # shard 1 prints as it goes; the others print when they are done
        (set -a; source "$stack_env"; set +a; SB_STACK_ENV="$stack_env" exec pytest "${args[@]}") &
    else
        (set -a; source "$stack_env"; set +a; SB_STACK_ENV="$stack_env" exec pytest "${args[@]}") \
            >"artifacts/shard-$k.log" 2>&1 &
    fi
    pids+=($!)
done
rc=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}"; r=$?
    k=$((i + 1))
    if [ "$k" -gt 1 ]; then step "shard $k of $SHARDS"; cat "artifacts/shard-$k.log"; fi
    if [ $r -eq 5 ]; then echo "run-tests: shard $k collected no tests" >&2; r=1; fi
    [ $r -eq 0 ] || rc=$r
done
exit $rc
