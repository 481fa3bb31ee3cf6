#!/usr/bin/env bash
# CLI latency of pmsd as installed by the Debian package (/usr/bin/pmsd on Debian's python3 and python3-*
# packages) against the same tree installed in a venv (PyPI's newest dependencies) and against PM2, in one run,
# on a booted Debian machine (tests/harness/systemd-system.sh): start, ls and jlist at 1, 10 and 100 apps.
#
#   bash tests/bench/bench_install.sh [bookworm] [bench_core.py options, e.g. --reps 5]
#
# Root. The machine is booted with the venv flavour (the venv at /opt/pmsd-venv, built from this tree with
# Debian 12's python3, hence bookworm only); the .deb is built from this tree and installed beside it. PM2 comes
# from the host's npm cache of bench_core.py (/tmp/pmsd-bench-pm2, installed there if missing) and runs on the
# machine's node. Prints bench_core.py's table; the machine is removed afterwards.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
suite=bookworm
[ "${1:-}" = bookworm ] && shift
harness="bash $repo/tests/harness/systemd-system.sh"
name=bench-install-$$

pm2=/tmp/pmsd-bench-pm2
if [ ! -x "$pm2/node_modules/.bin/pm2" ]; then
    mkdir -p "$pm2"
    [ -f "$pm2/package.json" ] || echo '{"name": "pmsd-bench-pm2", "private": true}' >"$pm2/package.json"
    (cd "$pm2" && npm install --no-audit --no-fund pm2 >&2)
fi
deb=$(DEST=$(mktemp -d) LINTIAN=0 bash "$repo/packaging/build-deb.sh" | tail -n 1)

trap '$harness down "$name" >/dev/null 2>&1 || true; rm -rf "$(dirname "$deb")"' EXIT
PMSD_TEST_SUITE=$suite PMSD_TEST_INSTALL=venv $harness up "$name" >&2
$harness exec "$name" -- sh -c 'cat > /root/pmsd.deb' <"$deb"
$harness exec "$name" --timeout 300 --env DEBIAN_FRONTEND=noninteractive -- \
    apt-get install -y --no-install-recommends /root/pmsd.deb >/dev/null
tar -C "$(dirname "$pm2")" -cf - "$(basename "$pm2")" | $harness exec "$name" -- tar -C /tmp -xf -
tar -C "$repo" -cf - --exclude=__pycache__ tests/bench | $harness exec "$name" -- sh -c 'mkdir -p /opt/bench && tar -C /opt/bench -xf -'
# root's user manager, as a lingering user's
$harness exec "$name" -- loginctl enable-linger root
$harness exec "$name" --timeout 60 -- sh -c 'until XDG_RUNTIME_DIR=/run/user/0 systemctl --user is-system-running >/dev/null 2>&1; do sleep 0.1; done'
echo "versions: $($harness exec "$name" -- sh -c 'systemctl --version | head -1; python3 --version; node --version; dpkg-query -W python3-typer python3-pystemd' | tr '\n' ' ')"
$harness exec "$name" --timeout 3000 --cwd /opt/bench -- \
    python3 tests/bench/bench_core.py --skip-pmsd \
    --pmsd package=/usr/bin/pmsd --pmsd venv=/opt/pmsd-venv/bin/pmsd "$@"
