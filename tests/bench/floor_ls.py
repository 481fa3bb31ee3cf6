"""Floor for `pmsd ls`: a bare Python process making the same D-Bus calls, then printing one line per unit.

Run as `python3 floor_ls.py PATTERN` in a fresh process, so interpreter start and imports count exactly as
they do for a CLI. Calls: Manager.ListUnitsByPatterns([], [PATTERN]), then Properties.GetAll for the
Service and Unit interfaces of every unit found.
"""

import sys

# pystemd ships dbuslib.pyi but no py.typed marker, so mypy will not read it.
from pystemd.dbuslib import DBus, apply_signature  # type: ignore[import-untyped]

DEST = b"org.freedesktop.systemd1"
MANAGER_PATH = b"/org/freedesktop/systemd1"
INTERFACES = (b"org.freedesktop.systemd1.Service", b"org.freedesktop.systemd1.Unit")


def unit_properties(bus: DBus, path: bytes) -> dict[bytes, object]:
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


def main() -> int:
    pattern = sys.argv[1].encode()
    with DBus(user_mode=True) as bus:
        units = bus.call_method(
            DEST,
            MANAGER_PATH,
            b"org.freedesktop.systemd1.Manager",
            b"ListUnitsByPatterns",
            apply_signature(b"asas", [[], [pattern]]),
        ).body
        # ListUnitsByPatterns rows are (name, description, load, active, sub, following, object path, ...).
        rows = [(unit[0], unit_properties(bus, unit[6])) for unit in units]
    for name, props in rows:
        fields = (
            name,
            props[b"ActiveState"],
            props[b"SubState"],
            props[b"MainPID"],
            props[b"NRestarts"],
        )
        print(" ".join(str(f.decode() if isinstance(f, bytes) else f) for f in fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
