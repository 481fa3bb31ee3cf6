"""Test app: ignores SIGINT, so only SIGKILL (after kill_timeout) ends it."""

import signal
import time

signal.signal(signal.SIGINT, signal.SIG_IGN)
print("stubborn started", flush=True)
while True:
    time.sleep(3600)
