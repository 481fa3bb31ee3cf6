"""Files pmsd puts in front of an app's own code (package data: see pyproject.toml).

node.js is given to Node apps with `node --require`: it maps `listen(PORT)` onto the socket systemd passes
to cluster-mode instances, and turns PM2's `process.send('ready')` into sd_notify READY=1.
"""

from __future__ import annotations

import os

NODE_PRELOAD: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node.js")
