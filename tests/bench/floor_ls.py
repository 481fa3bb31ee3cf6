"""Floor for `pmsd ls`: a bare Python process making the same D-Bus calls, then printing one line per unit.

    python3 floor_ls.py PATTERN             the calls `pmsd ls` makes (see pmsd/systemd/bus.py)
    python3 floor_ls.py PATTERN --getall    the earlier design: two GetAll per unit over the user bus

Run in a fresh process each time, so interpreter start and imports count exactly as they do for a CLI.

Default: over the manager's private socket ($XDG_RUNTIME_DIR/systemd/private, what systemctl and pmsd use),
Manager.ListUnitsByPatterns([], [PATTERN]), then for every unit one Properties.Get of the Unit's
InvocationID and, for running units, of the Service properties behind PM2's columns; for units that are not
active, of the exit result instead.

--getall: over the user bus, Properties.GetAll for the Service and Unit interfaces of every unit (some
300 + 100 properties per unit): what pmsd did first, kept to show what the lean calls save.
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
UNIT = b"org.freedesktop.systemd1.Unit"
SERVICE = b"org.freedesktop.systemd1.Service"
RUNNING_PROPS = (
    (b"MemoryCurrent", b"t"),
    (b"CPUUsageNSec", b"t"),
    (b"MainPID", b"u"),
    (b"NRestarts", b"u"),
    (b"ControlGroup", b"s"),
    (b"ExecMainStartTimestamp", b"t"),
)
EXITED_PROPS = (
    (b"Result", b"s"),
    (b"NRestarts", b"u"),
    (b"ExecMainCode", b"i"),
    (b"ExecMainStatus", b"i"),
)


def all_properties(bus: DBus, path: bytes, active: bytes) -> dict[bytes, object]:
    """Merge GetAll of the Service and Unit interfaces of one unit object."""
    props: dict[bytes, object] = {}
    for interface in (SERVICE, UNIT):
        reply = bus.call_method(
            DEST, path, b"org.freedesktop.DBus.Properties", b"GetAll", apply_signature(b"s", [interface]),
        )
        props.update(reply.body)
    return props


def lean_properties(bus: DBus, path: bytes, active: bytes) -> dict[bytes, object]:
    """One Properties.Get per column pmsd shows, as pmsd.systemd.bus.Manager.service_state does."""
    props: dict[bytes, object] = {b"InvocationID": bus.get_property(DEST, path, UNIT, b"InvocationID", b"ay")}
    running = active in (b"active", b"activating", b"deactivating", b"reloading")
    wanted = RUNNING_PROPS if running else EXITED_PROPS
    props.update({name: bus.get_property(DEST, path, SERVICE, name, sig) for name, sig in wanted})
    return props


def open_bus(getall: bool) -> DBus:
    if getall:
        return DBus(user_mode=True)
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
    return DBusAddress(f"unix:path={runtime_dir}/systemd/private".encode(), peer_to_peer=True)


def main() -> int:
    pattern = sys.argv[1].encode()
    getall = "--getall" in sys.argv[2:]
    fetch = all_properties if getall else lean_properties
    with open_bus(getall) as bus:
        units = bus.call_method(
            DEST, MANAGER_PATH, b"org.freedesktop.systemd1.Manager", b"ListUnitsByPatterns",
            apply_signature(b"asas", [[], [pattern]]),
        ).body
        # Rows are (name, description, load, active, sub, following, object path, ...).
        rows = [(unit[0], unit[3], unit[4], fetch(bus, unit[6], unit[3])) for unit in units]
    for name, active, sub, props in rows:
        fields = (name, active, sub, props.get(b"MainPID", 0), props[b"NRestarts"])
        print(" ".join(str(f.decode() if isinstance(f, bytes) else f) for f in fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
