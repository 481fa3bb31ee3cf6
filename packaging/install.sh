#!/usr/bin/env bash
# Install pmsd from this source tree, with what it needs from Debian and PyPI (idempotent).
#   packaging/install.sh          pmsd and its runtime dependencies
#   packaging/install.sh --test   also the test tools (pytest, hypothesis, ruff, mypy, prometheus_client)
# The last line of stdout is the Python interpreter pmsd was installed for (run it as `$python -m pmsd`);
# everything else goes to stderr.
#
# Where it installs, the way the machine wants it:
# - PYTHON (default python3) when it can take packages: it has pip and is not "externally managed" (PEP 668;
#   a pyenv or a venv python, or a python3 of a distro that allows it): pip install -e, as before;
# - otherwise (Debian 12 and 13's /usr/bin/python3: no pip in minbase, and PEP 668's
#   `externally-managed-environment` with it) a venv of that python, created here: $PMSD_VENV, default .venv in
#   this tree. A venv is PEP 668's own answer; pipx users have `pipx install .` (README, Requirements).
set -euo pipefail
cd "$(dirname "$0")/.."
exec 3>&1 1>&2  # fd 3 is the real stdout: only the interpreter's path goes there

test_extra=""
[ "${1:-}" = "--test" ] && test_extra=1
python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "install: no $python on PATH; install python3 (>= 3.11) first"; exit 1; }

# Whether $python takes `pip install` into its own environment.
takes_packages() {
    "$python" - <<'EOF'
import os, sys, sysconfig
try:
    import pip  # noqa: F401
except ImportError:
    sys.exit(1)
# PEP 668: the marker sits in the stdlib directory; a venv's sys.prefix differs from its base and is exempt.
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(1 if sys.prefix == sys.base_prefix and os.path.exists(marker) else 0)
EOF
}

use_venv=""
takes_packages || use_venv=1

# pystemd is an sdist on PyPI: it builds against libsystemd (headers, pkg-config, a C compiler, Python.h).
# dbus-user-session gives the user manager a bus.
debs=(systemd dbus-user-session libsystemd-dev pkg-config gcc)
# A venv needs the venv module and the interpreter's headers from Debian; the tests also build venvs of
# Debian's own python3 (god from a venv; the system instance's pmsd).
if [ -n "$use_venv" ]; then
    minor=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    debs+=("python$minor-venv" "python$minor-dev")
fi
# logrotate: tests/e2e/test_logfiles.py; tmux: tests/e2e/test_monit.py drives `pmsd monit` in a terminal
[ -n "$test_extra" ] && debs+=(python3-venv logrotate tmux)
missing=()
for deb in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing+=("$deb")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "install: needs these Debian packages, installed as root: apt-get install ${missing[*]}"; exit 1; }
    echo "install: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -n "$use_venv" ]; then
    venv=${PMSD_VENV:-$PWD/.venv}
    if [ ! -x "$venv/bin/python" ]; then
        echo "install: $python cannot take pip packages (no pip, or PEP 668); creating the venv $venv"
        "$python" -m venv "$venv"
    fi
    python=$venv/bin/python
fi

extra=""
[ -n "$test_extra" ] && extra="[test]"
"$python" -m pip install --quiet --disable-pip-version-check -e ".${extra}"
# The interpreter as invoked (a venv's python is a symlink that must not be resolved: README, god_command).
if [ -n "$use_venv" ]; then echo "$python" >&3; else command -v "$python" >&3; fi
