#!/usr/bin/env bash
# Install the Debian packages the local stack and the tests need (idempotent).
# kamailio: the SIP edge of a NODES=2 stack (its package holds every module we load:
# dispatcher, registrar, usrloc, auth, htable). Its own system service must not run: the
# stack starts Kamailio with its own configuration (deploy/local/stack-up.sh).
set -euo pipefail
PKGS=(gcc libc6-dev python3-dev postgresql debootstrap sip-tester baresip ffmpeg espeak-ng sox graphviz prometheus chromium curl iproute2 procps rsync kamailio)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]}; run as root or install them: apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# postgresql's package must not start a cluster we do not use: policy-rc.d keeps services down.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/switchboard-apt.log 2>&1 \
    || { tail -30 /tmp/switchboard-apt.log >&2; echo "install-deps: apt-get install failed" >&2; exit 1; }
# Debian's kamailio service would take port 5060 with the example configuration.
if [[ " ${missing[*]} " == *" kamailio "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now kamailio >/dev/null 2>&1 || true
fi
