"""Floor for starting and stopping N apps at once: one bare Python process making one StartTransientUnit per unit
(Type=exec, /bin/sleep infinity) on the manager's private socket, as pmsd does, then waiting until none of them
has a job; then the same for StopUnit. No registry, no files, no table: what systemd itself costs.

Usage: python3 floor_many.py PREFIX COUNT    prints {"start": s, "stop": s} as JSON
"""

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pystemd.dbuslib import DBusAddress, apply_signature

# Run as a script, this file's directory is sys.path[0]: the repository root makes the sibling importable under
# the name mypy knows it by (tests/ is a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.floor_start import CLOSE, property_args

DEST, PATH, MANAGER = b"org.freedesktop.systemd1", b"/org/freedesktop/systemd1", b"org.freedesktop.systemd1.Manager"


def jobs_left(bus: Any, pattern: bytes) -> int:
    rows = bus.call_method(DEST, PATH, MANAGER, b"ListUnitsByPatterns", apply_signature(b"asas", [[], [pattern]])).body
    return sum(1 for row in rows if row[7])


def wait_no_job(bus: Any, pattern: bytes) -> None:
    while jobs_left(bus, pattern):
        time.sleep(0.01)


def main() -> int:
    prefix, count = sys.argv[1], int(sys.argv[2])
    units = [f"{prefix}{n:04d}.service".encode() for n in range(count)]
    pattern = f"{prefix}*".encode()
    bus = DBusAddress(f"unix:path={os.environ['XDG_RUNTIME_DIR']}/systemd/private".encode(), True)
    bus.open()
    began = time.perf_counter()
    for unit in units:
        args = apply_signature(b"ss", [unit, b"fail"])
        args.append((ord("a"), b"(sv)"))
        args += property_args(b"Type", b"s", b"exec")
        args += property_args(b"ExecStart", b"a(sasb)", [(b"/bin/sleep", [b"/bin/sleep", b"infinity"], False)])
        args.append(CLOSE)
        args += [(ord("a"), b"(sa(sv))"), CLOSE]
        bus.call_method(DEST, PATH, MANAGER, b"StartTransientUnit", args)
    wait_no_job(bus, pattern)
    started = time.perf_counter() - began
    began = time.perf_counter()
    for unit in units:
        bus.call_method(DEST, PATH, MANAGER, b"StopUnit", apply_signature(b"ss", [unit, b"replace"]))
    wait_no_job(bus, pattern)
    print(json.dumps({"start": started, "stop": time.perf_counter() - began}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
