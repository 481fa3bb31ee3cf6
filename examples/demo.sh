#!/usr/bin/env bash
# Install pmsd, make sure a systemd user manager runs, start the example ecosystem and show `pmsd ls`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install.sh
eval "$(bash tests/harness/systemd-user.sh up)"
python3 -m pmsd start examples/ecosystem.yaml
python3 -m pmsd ls
