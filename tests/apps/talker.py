"""Test app: prints `LINES` numbered lines (stdout, or stderr for every `ERR_EVERY`-th), then one line per SIGUSR1."""

import os
import signal
import sys
import time

tag = os.environ.get("TAG", "line")
count = int(os.environ.get("LINES", "0"))
err_every = int(os.environ.get("ERR_EVERY", "0"))
for number in range(count):
    to_err = err_every and number % err_every == 0
    print(f"{tag} {'err' if to_err else 'out'} {number}", file=sys.stderr if to_err else sys.stdout, flush=True)

pings = 0


def ping(_signum: int, _frame: object) -> None:
    global pings
    pings += 1
    print(f"{tag} ping {pings} {time.time():.6f}", flush=True)


signal.signal(signal.SIGUSR1, ping)
while True:
    signal.pause()
