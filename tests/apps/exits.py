"""Test app: exits at once with the status given as its first argument (default 1)."""

import sys

print("exiting", flush=True)
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
