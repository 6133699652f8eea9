#!/usr/bin/env bash
# Install the Debian packages the local stack and the tests need (idempotent).
set -euo pipefail
PKGS=(gcc libc6-dev python3-dev postgresql debootstrap sip-tester baresip ffmpeg espeak-ng sox graphviz prometheus chromium curl iproute2 procps rsync)
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
