#!/usr/bin/env bash
# Install the test dependencies and run pmsd's whole test suite (linters, pure tests, end-to-end tests
# against a real systemd user manager, which tests/harness/systemd-user.sh brings up when needed).
set -euo pipefail
cd "$(dirname "$0")/.."
# install.sh prints the interpreter it installed into: this python3, or a venv it made where python3 is
# "externally managed" (Debian's own, PEP 668).
python=$(bash packaging/install.sh --test | tail -n 1)
exec "$python" -m pytest -q "$@"
