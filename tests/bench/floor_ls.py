"""Floor for `pmsd ls`: a bare Python process making the same D-Bus calls, then printing one line per unit.

    python3 floor_ls.py PATTERN             the calls `pmsd ls` makes, over the user bus
    python3 floor_ls.py PATTERN --private   the same calls over the manager's private socket
    python3 floor_ls.py PATTERN --lean      a cheaper way to get the same columns (for comparison)

Run in a fresh process each time, so interpreter start and imports count exactly as they do for a CLI.

Default: over the user bus, Manager.ListUnitsByPatterns([], [PATTERN]), then Properties.GetAll for the
Service and Unit interfaces of every unit found (some 300 + 100 properties per unit).

--private: the same calls over the manager's private socket ($XDG_RUNTIME_DIR/systemd/private, what
systemctl itself uses, and pmsd too), skipping the bus daemon's hop.

--lean: over the private socket, the same ListUnitsByPatterns, then one Properties.Get per column needed.
"""

import os
import sys

from pystemd.dbuslib import (
    DBus,
    DBusAddress,
    apply_signature,
)

DEST = b"org.freedesktop.systemd1"
MANAGER_PATH = b"/org/freedesktop/systemd1"
SERVICE = b"org.freedesktop.systemd1.Service"
INTERFACES = (SERVICE, b"org.freedesktop.systemd1.Unit")
# The columns of a PM2-style table that ListUnitsByPatterns does not already carry.
LEAN_PROPS = (
    (b"MainPID", b"u"),
    (b"NRestarts", b"u"),
    (b"ExecMainStartTimestamp", b"t"),
    (b"MemoryCurrent", b"t"),
    (b"CPUUsageNSec", b"t"),
)


def all_properties(bus: DBus, path: bytes) -> dict[bytes, object]:
    """Merge GetAll of the Service and Unit interfaces of one unit object."""
    props: dict[bytes, object] = {}
    for interface in INTERFACES:
        reply = bus.call_method(
            DEST,
            path,
            b"org.freedesktop.DBus.Properties",
            b"GetAll",
            apply_signature(b"s", [interface]),
        )
        props.update(reply.body)
    return props


def lean_properties(bus: DBus, path: bytes) -> dict[bytes, object]:
    """One Properties.Get per needed column."""
    return {name: bus.get_property(DEST, path, SERVICE, name, sig) for name, sig in LEAN_PROPS}


def open_bus(private: bool) -> DBus:
    if private:
        runtime_dir = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
        address = f"unix:path={runtime_dir}/systemd/private".encode()
        return DBusAddress(address, peer_to_peer=True)
    return DBus(user_mode=True)


def main() -> int:
    pattern = sys.argv[1].encode()
    lean = "--lean" in sys.argv[2:]
    fetch = lean_properties if lean else all_properties
    with open_bus(lean or "--private" in sys.argv[2:]) as bus:
        units = bus.call_method(
            DEST,
            MANAGER_PATH,
            b"org.freedesktop.systemd1.Manager",
            b"ListUnitsByPatterns",
            apply_signature(b"asas", [[], [pattern]]),
        ).body
        # Rows are (name, description, load, active, sub, following, object path, ...).
        rows = [(unit[0], unit[3], unit[4], fetch(bus, unit[6])) for unit in units]
    for name, active, sub, props in rows:
        fields = (name, active, sub, props[b"MainPID"], props[b"NRestarts"])
        print(" ".join(str(f.decode() if isinstance(f, bytes) else f) for f in fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
