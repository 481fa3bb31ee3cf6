"""Test app: writes `LINES` numbered lines to stdout in chunks of `CHUNK`, `PAUSE_MS` apart, then idles."""

import os
import sys
import time

count, chunk = int(os.environ.get("LINES", "1000")), int(os.environ.get("CHUNK", "100"))
pause = int(os.environ.get("PAUSE_MS", "1")) / 1000
for start in range(0, count, chunk):
    sys.stdout.write("".join(f"line {n}\n" for n in range(start, min(count, start + chunk))))
    sys.stdout.flush()
    time.sleep(pause)
while True:
    time.sleep(3600)
