"""The TCP ports a cluster app was found listening on (issue 13: unmodified cluster apps).

A Node app that calls `listen(8000)` with the port written in its code declares nothing pmsd could read. The
first time it runs, one instance runs alone with the preload in discovery mode: its listen(8000) goes to an
ephemeral port and the preload reports 8000 in the unit's StatusText (pmsd.api.cluster.probe_ports). The ports
found are kept here, one small file per app, and every later start hands systemd's socket for them to every
instance. systemd cannot hold this (it is learned, not declared), and it is not the definition (an ecosystem
file applied again must not forget it), so it lives beside the registry rather than in it.

`None` means never probed; an empty tuple means probed and found listening on nothing (a worker app).
"""

from __future__ import annotations

import contextlib
import json
import os

from pmsd.state.atomic import write_atomic
from pmsd.systemd.names import escape_name

PORTS_DIR = "ports"


def ports_file(state_dir: str, name: str) -> str:
    # escape_name never yields "/" (it is written \x2f), so the name cannot leave the directory.
    return os.path.join(state_dir, PORTS_DIR, f"{escape_name(name)}.json")


def read_found_ports(state_dir: str, name: str) -> tuple[int, ...] | None:
    """The ports recorded for the app, or None when it was never probed (or its file is unreadable)."""
    try:
        with open(ports_file(state_dir, name), encoding="utf-8") as handle:
            data = json.load(handle)
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    ports = data.get("ports") if isinstance(data, dict) else None
    if not isinstance(ports, list) or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
        return None
    return tuple(sorted(set(ports)))


def write_found_ports(state_dir: str, name: str, ports: tuple[int, ...]) -> None:
    write_atomic(ports_file(state_dir, name), json.dumps({"ports": sorted(set(ports))}) + "\n")


def forget_found_ports(state_dir: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ports_file(state_dir, name))


def parse_status_ports(status_text: str) -> tuple[int, ...]:
    """The ports in a StatusText the Node preload wrote: `pmsd-ports: 8000 9000` (else none)."""
    prefix = "pmsd-ports:"
    if not status_text.startswith(prefix):
        return ()
    words = status_text[len(prefix):].split()
    return tuple(sorted({int(word) for word in words if word.isdigit() and 0 < int(word) < 65536}))
