"""Test app: records its start (pid, environment) in $MARKER_DIR, then idles until stopped."""

import json
import os
import sys
import time

marker_dir = os.environ.get("MARKER_DIR")
if marker_dir:
    record = {"pid": os.getpid(), "argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}
    path = os.path.join(marker_dir, f"{os.getpid()}.json")
    with open(path + ".tmp", "w") as handle:
        json.dump(record, handle)
    os.replace(path + ".tmp", path)
print(f"sleeper {os.getpid()} started", flush=True)
while True:
    time.sleep(3600)
