"""Test app: allocates memory in steps (argv[1] MiB per step, default 10) every argv[2] seconds (default 0.1),
up to argv[3] MiB (default 500), then holds it."""

import sys
import time

step = int(sys.argv[1]) if len(sys.argv) > 1 else 10
every = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
ceiling = int(sys.argv[3]) if len(sys.argv) > 3 else 500
held: list[bytearray] = []
print("hogging", flush=True)
while True:
    if len(held) * step < ceiling:
        block = bytearray(step * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch every page so it counts as resident
        held.append(block)
    time.sleep(every)
