#!/usr/bin/env bash
# `make test`: lint, type-check, unit tests, then the local stack (real
# PostgreSQL, Asterisk 22, SIPp) for integration, end-to-end and browser tests.
# The stack is always brought down at the end, pass or fail.
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

step "local stack up (PostgreSQL, Asterisk 22)"
down() {
    local rc=$?
    step "local stack down"
    bash "$REPO/deploy/local/stack-down.sh"
    bash "$REPO/deploy/local/check-down.sh" || rc=1
    exit $rc
}
trap down EXIT
bash deploy/local/stack-up.sh || exit 1
set -a; source "$RUN/stack.env"; set +a

step "integration (PostgreSQL), security probe, end-to-end (Asterisk 22 + SIPp) and browser tests"
pytest -v -p no:cacheprovider -rA --durations=40 --junitxml=artifacts/junit.xml tests/integration tests/security tests/e2e tests/browser
rc=$?
if [ $rc -eq 5 ]; then echo "run-tests: no integration/e2e tests collected" >&2; exit 1; fi
exit $rc
