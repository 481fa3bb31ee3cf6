#!/usr/bin/env bash
# Install the test dependencies and run pmsd's whole test suite (linters, pure tests, end-to-end tests
# against a real systemd user manager, which tests/harness/systemd-user.sh brings up when needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install.sh --test
exec python3 -m pytest -q "$@"
