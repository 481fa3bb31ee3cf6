"""systemd's D-Bus vocabulary: object paths, interfaces, and unit properties as (name, signature, value).

pystemd's low-level binding wants bytes and explicit container markers; this module builds them, and turns
what comes back (bytes keys and strings) into pmsd's str-keyed values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pmsd.systemd import lean_import

lean_import.install()

from pystemd.dbuslib import apply_signature, path_decode, path_encode  # noqa: E402

MANAGER_PATH = b"/org/freedesktop/systemd1"
MANAGER = b"org.freedesktop.systemd1.Manager"
UNIT = b"org.freedesktop.systemd1.Unit"
SERVICE = b"org.freedesktop.systemd1.Service"
PROPERTIES = b"org.freedesktop.DBus.Properties"
UNIT_PATH_PREFIX = b"/org/freedesktop/systemd1/unit"
_CLOSE = (-1, None)


@dataclass(frozen=True)
class UnitProperty:
    """A property as StartTransientUnit takes it: D-Bus name, signature, value."""

    name: str
    signature: str
    value: Any


def decode(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def decode_all(value: Any) -> Any:
    """decode() inside lists and tuples too: pystemd gives a(sasb...) properties (ExecStart=) with bytes inside."""
    if isinstance(value, (list, tuple)):
        return type(value)(decode_all(item) for item in value)
    return decode(value)


def decode_properties(raw: Any) -> dict[str, Any]:
    """A property dict from pystemd (bytes keys and strings) as pmsd's str-keyed values; byte arrays
    (InvocationID) stay bytes."""
    out: dict[str, Any] = {}
    for key, value in dict(raw).items():
        name = decode(key)
        if name == "InvocationID":
            out[name] = bytes(value)
        elif isinstance(value, tuple):
            out[name] = tuple(decode(item) for item in value)
        else:
            out[name] = decode(value)
    return out


def unit_of_path(path: bytes) -> str:
    return str(decode(path_decode(path, UNIT_PATH_PREFIX)))


def unit_path(unit: str) -> bytes:
    return bytes(path_encode(UNIT_PATH_PREFIX, unit.encode()))


def encode_properties(properties: Sequence[UnitProperty]) -> list[Any]:
    # a(sv): pystemd's apply_signature cannot build variants itself, so each one is opened, filled and
    # closed explicitly, the way pystemd.systemd1.unit_signatures does.
    out: list[Any] = [(ord("a"), b"(sv)")]
    for prop in properties:
        signature = prop.signature.encode()
        out += [(ord("r"), b"sv"), *apply_signature(b"s", [prop.name.encode()]), (ord("v"), signature)]
        out += apply_signature(signature, [_to_bus(prop.value)])
        out += [_CLOSE, _CLOSE]
    out.append(_CLOSE)
    return out


def _to_bus(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (list, tuple)):
        converted = [_to_bus(item) for item in value]
        return tuple(converted) if isinstance(value, tuple) else converted
    return value
