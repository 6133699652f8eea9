#!/usr/bin/env bash
# Bring the local stack up (idempotent): PostgreSQL, Asterisk 22 in its Debian
# sid root, configuration rendered from deploy/asterisk/. Writes run/stack.env
# with the addresses and secret files the service and the tests use.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

[ "$(id -u)" = 0 ] || die "the local stack needs root (chroot, mounts, private PostgreSQL as user postgres)"

# 1. PostgreSQL
DSN="$(bash deploy/local/postgres.sh)"

# 2. Asterisk root (cached outside the repo; rebuilt only when unhealthy)
ASTERISK_ROOT="$ASTERISK_ROOT" bash deploy/local/asterisk-root.sh

# 3. Stop an Asterisk still running from this root (a previous run), then clean mounts.
bash deploy/local/asterisk-stop.sh quiet

# 4. Secrets (random, kept in run/, never in the repo)
secret "$RUN/ami.secret"
secret "$RUN/ami-admin.secret"
secret "$RUN/sip-agents.secret"

AMI_PORT="${STACK_AMI_PORT:-$(free_port 5038)}"
SIP_PORT="${STACK_SIP_PORT:-$(free_port 5060 udp)}"
AMI_USER=switchboard
ADMIN_USER=sbadmin

# 5. Agents' endpoints from the agents list
AGENTS_FILE="${STACK_AGENTS_FILE:-deploy/agents.yaml}"
: >"$RUN/pjsip_agents.conf"; : >"$RUN/queues_members.conf"
if [ -f "$AGENTS_FILE" ] && switchboard agents --help >/dev/null 2>&1; then
    SWITCHBOARD_SIP_AGENTS_SECRET_FILE="$RUN/sip-agents.secret" \
        switchboard agents render-pjsip "$AGENTS_FILE" --secret-file "$RUN/sip-agents.secret" \
        --pjsip-out "$RUN/pjsip_agents.conf" --queue-out "$RUN/queues_members.conf"
fi

# 6. Render configuration into the root. The test-only admin AMI user (command
#    class, for `core restart now` in tests) is added here, never in deploy/.
ADMIN_BLOCK="
[$ADMIN_USER]
secret = $(cat "$RUN/ami-admin.secret")
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all
"
python3 deploy/local/render_asterisk.py "$ASTERISK_ROOT$AST_ETC" \
    ETC_DIR="$AST_ETC" AMI_PORT="$AMI_PORT" AMI_USERNAME="$AMI_USER" AMI_SECRET="$(cat "$RUN/ami.secret")" \
    AMI_EXTRA_USERS="$ADMIN_BLOCK" SIP_PORT="$SIP_PORT" TRUNK_MATCH=127.0.0.1 HEARTBEAT_MAX_AGE=15 \
    RTP_START=20000 RTP_END=20999 \
    --agents-pjsip "$RUN/pjsip_agents.conf" --agents-queue "$RUN/queues_members.conf"

# 7. Mounts: proc, and the recordings folder (prompts to play, call recordings to write)
mkdir -p "$ASTERISK_ROOT/proc" "$ASTERISK_ROOT$AST_MEDIA" "$REPO/recordings/calls"
mountpoint -q "$ASTERISK_ROOT/proc" || mount -t proc proc "$ASTERISK_ROOT/proc"
mount --bind "$REPO/recordings" "$ASTERISK_ROOT$AST_MEDIA"
mkdir -p "$ASTERISK_ROOT/var/run/asterisk" "$ASTERISK_ROOT/var/log/asterisk" "$ASTERISK_ROOT/var/lib/asterisk"
rm -f "$ASTERISK_ROOT/var/lib/asterisk/astdb.sqlite3"   # no heartbeat left over from a previous run

# 8. Start Asterisk in the background, detached from our output (CI must not hang on it).
setsid chroot "$ASTERISK_ROOT" /usr/sbin/asterisk -f -C "$AST_ETC/asterisk.conf" \
    </dev/null >"$RUN/asterisk.console.log" 2>&1 &
echo $! >"$RUN/asterisk.launcher.pid"
if ! python3 deploy/local/wait_ami.py 127.0.0.1 "$AMI_PORT" "$AMI_USER" "$RUN/ami.secret" 60; then
    tail -30 "$RUN/asterisk.console.log" >&2
    die "Asterisk did not boot"
fi

cat >"$RUN/stack.env" <<ENV
# Written by deploy/local/stack-up.sh: the local stack's addresses. Secrets are files.
SWITCHBOARD_DSN=$DSN
SWITCHBOARD_AMI_HOST=127.0.0.1
SWITCHBOARD_AMI_PORT=$AMI_PORT
SWITCHBOARD_AMI_USERNAME=$AMI_USER
SWITCHBOARD_AMI_SECRET_FILE=$RUN/ami.secret
STACK_AMI_ADMIN_USERNAME=$ADMIN_USER
STACK_AMI_ADMIN_SECRET_FILE=$RUN/ami-admin.secret
STACK_SIP_PORT=$SIP_PORT
STACK_SIP_AGENTS_SECRET_FILE=$RUN/sip-agents.secret
STACK_ASTERISK_ROOT=$ASTERISK_ROOT
STACK_ASTERISK_ETC=$AST_ETC
STACK_SOUND_PREFIX=$AST_MEDIA/prompts
STACK_RECORDINGS_IN_ASTERISK=$AST_MEDIA
ENV
cat >"$RUN/switchboard.toml" <<TOML
# Written by deploy/local/stack-up.sh for the local stack. Use with
#   .venv/bin/switchboard --config run/switchboard.toml COMMAND
[ami]
host = "127.0.0.1"
port = $AMI_PORT
username = "$AMI_USER"
secret_file = "$RUN/ami.secret"

[database]
dsn = "$DSN"
spool_dir = "$RUN/spool"

[paths]
flows_dir = "$REPO/ivr_flows"
recordings_dir = "$REPO/recordings"
prompts_dir = "$REPO/recordings/prompts"
run_dir = "$RUN"
asterisk_prompts_dir = "$AST_MEDIA/prompts"
asterisk_recordings_dir = "$AST_MEDIA"
TOML
say "up: Asterisk $(chroot "$ASTERISK_ROOT" /usr/sbin/asterisk -V | cut -d' ' -f2) AMI 127.0.0.1:$AMI_PORT SIP udp 127.0.0.1:$SIP_PORT; PostgreSQL ${DSN%%\?*}"
say "settings for the service: run/switchboard.toml (tests: run/stack.env)"
