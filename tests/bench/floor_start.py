"""Floor for `pmsd start`: a bare Python process doing one StartTransientUnit over D-Bus, then exiting.

Usage: python3 floor_start.py UNIT INTERPRETER SCRIPT
Starts UNIT (Type=exec, ExecStart=INTERPRETER SCRIPT) in the user manager. It does not wait for the job: the
bench's end point is the app's own marker, which the app can only write after the exec the job waits for.
"""

import sys
from typing import Any

from pystemd.dbuslib import DBus, apply_signature

# DBus container markers as pystemd.dbuslib.call_method takes them: (type code, contents) opens a
# container, (-1, None) closes the innermost one.
CLOSE: tuple[int, Any] = (-1, None)


def property_args(name: bytes, signature: bytes, value: object) -> list[tuple[int, Any]]:
    """One (sv) struct of the a(sv) property array."""
    return [
        (ord("r"), b"sv"),
        (ord("s"), name),
        (ord("v"), signature),
        *apply_signature(signature, [value]),
        CLOSE,
        CLOSE,
    ]


def main() -> int:
    unit, interpreter, script = (arg.encode() for arg in sys.argv[1:4])
    args = apply_signature(b"ss", [unit, b"fail"])
    args.append((ord("a"), b"(sv)"))
    args += property_args(b"Type", b"s", b"exec")
    args += property_args(b"CollectMode", b"s", b"inactive-or-failed")
    args += property_args(b"ExecStart", b"a(sasb)", [(interpreter, [interpreter, script], False)])
    args.append(CLOSE)
    args += [(ord("a"), b"(sa(sv))"), CLOSE]  # no auxiliary units
    with DBus(user_mode=True) as bus:
        bus.call_method(
            b"org.freedesktop.systemd1",
            b"/org/freedesktop/systemd1",
            b"org.freedesktop.systemd1.Manager",
            b"StartTransientUnit",
            args,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
