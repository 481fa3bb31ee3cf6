#!/usr/bin/env bash
# Install pmsd from this source tree, with what it needs from Debian and PyPI (idempotent).
#   packaging/install.sh          pmsd and its runtime dependencies
#   packaging/install.sh --test   also the test tools (pytest, ruff, mypy)
set -euo pipefail
cd "$(dirname "$0")/.."

# pystemd is an sdist on PyPI: it builds against libsystemd. dbus-user-session gives the user manager a bus.
debs=(systemd dbus-user-session libsystemd-dev pkg-config gcc)
# The tests build venvs of Debian's own python3 (god from a venv; the system instance's pmsd).
[ "${1:-}" = "--test" ] && debs+=(python3-venv)
missing=()
for deb in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing+=("$deb")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install: apt-get install ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
extra=""
[ "${1:-}" = "--test" ] && extra="[test]"
"$python" -m pip install --quiet --disable-pip-version-check -e ".${extra}"
