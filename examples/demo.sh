#!/usr/bin/env bash
# Install pmsd, make sure a systemd user manager runs, start the example ecosystem and show `pmsd ls`.
set -euo pipefail
cd "$(dirname "$0")/.."
# install.sh prints the interpreter pmsd went into: this python, or a venv it made (Debian's PEP 668 python3).
python=$(bash packaging/install.sh | tail -n 1)
eval "$(bash tests/harness/systemd-user.sh up)"
"$python" -m pmsd start examples/ecosystem.yaml
"$python" -m pmsd ls
