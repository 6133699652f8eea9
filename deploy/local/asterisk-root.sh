#!/usr/bin/env bash
# Build (or reuse) a Debian sid root with Asterisk 22 in it, in a cache folder
# outside the repository. Idempotent: when `asterisk -V` works inside the root
# it is reused as is; otherwise it is rebuilt from scratch.
#
#   ASTERISK_ROOT   where the root lives (default /var/cache/switchboard/asterisk-sid)
#   DEBIAN_MIRROR   Debian mirror (default: the deb.debian.org redirector)
set -euo pipefail

ROOT="${ASTERISK_ROOT:-/var/cache/switchboard/asterisk-sid}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="asterisk,asterisk-core-sounds-en-wav,asterisk-moh-opsound-wav,ca-certificates"

die() { echo "asterisk-root: $*" >&2; exit 1; }

healthy() {
    [ -x "$ROOT/usr/sbin/asterisk" ] && chroot "$ROOT" /usr/sbin/asterisk -V 2>/dev/null | grep -q '^Asterisk 2[2-9]'
}

if healthy; then
    echo "asterisk-root: reusing $ROOT ($(chroot "$ROOT" /usr/sbin/asterisk -V))"
    exit 0
fi

# STACK_ROOT_FROM: a healthy root to copy (a second stack of `make test`): a copy takes
# seconds, a debootstrap a minute and the network. proc and the recordings mount are left out.
FROM="${STACK_ROOT_FROM:-}"
if [ -n "$FROM" ] && [ -x "$FROM/usr/sbin/asterisk" ]; then
    if mountpoint -q "$ROOT/proc" 2>/dev/null; then umount -l "$ROOT/proc" || true; fi
    mkdir -p "$ROOT"
    rsync -a --delete --exclude=/proc/ --exclude=/var/lib/switchboard/recordings/ --exclude=/run/ \
        --exclude=/var/lib/asterisk/astdb.sqlite3 "$FROM/" "$ROOT/" || die "cannot copy $FROM to $ROOT"
    mkdir -p "$ROOT/proc" "$ROOT/run"
    if healthy; then
        echo "asterisk-root: copied $FROM to $ROOT ($(chroot "$ROOT" /usr/sbin/asterisk -V))"
        exit 0
    fi
    echo "asterisk-root: the copy of $FROM is not healthy: building $ROOT" >&2
fi

[ "$(id -u)" = 0 ] || die "building the Asterisk root needs root (debootstrap and chroot); run as root or set ASTERISK_ROOT to a ready root"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
curl -fsS -m 20 -o /dev/null "$MIRROR/dists/sid/Release" 2>/dev/null \
    || wget -q -T 20 -O /dev/null "$MIRROR/dists/sid/Release" 2>/dev/null \
    || die "cannot reach the Debian mirror $MIRROR (needed once to build the Asterisk 22 root)"

# A half-built root may still have proc mounted: unmount before removing.
if mountpoint -q "$ROOT/proc" 2>/dev/null; then umount -l "$ROOT/proc" || true; fi
rm -rf "$ROOT.tmp"
mkdir -p "$(dirname "$ROOT")"
echo "asterisk-root: debootstrap sid into $ROOT (about a minute)..."
debootstrap --variant=minbase --include="$PACKAGES" sid "$ROOT.tmp" "$MIRROR" >"$(dirname "$ROOT")/debootstrap.log" 2>&1 \
    || { tail -20 "$(dirname "$ROOT")/debootstrap.log" >&2; die "debootstrap failed (log: $(dirname "$ROOT")/debootstrap.log)"; }
rm -rf "$ROOT"
mv "$ROOT.tmp" "$ROOT"
healthy || die "built $ROOT but 'asterisk -V' does not report Asterisk 22+"
echo "asterisk-root: ready: $(chroot "$ROOT" /usr/sbin/asterisk -V)"
