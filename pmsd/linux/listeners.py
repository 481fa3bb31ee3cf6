"""Who listens on a TCP port, read from /proc without privileges (what `ss -ltnp` shows, for what is visible).

/proc/net/tcp and tcp6 list every socket of the network namespace with its owner's uid and inode, readable by
anyone (proc(5)); which process holds an inode is only visible in /proc/<pid>/fd of processes one may ptrace-read
(one's own, or every one as root). That is enough to tell a cluster app's socket (held by its systemd manager
and its instances) from a stranger on the same port.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN = "0A"  # TCP_LISTEN in the `st` column (include/net/tcp_states.h)


@dataclass(frozen=True)
class Listener:
    address: str  # "0.0.0.0", "::", "127.0.0.1"; an IPv4-mapped IPv6 address is given as IPv4
    port: int
    uid: int
    inode: int


def _address(hex_text: str) -> str:
    """A /proc/net/tcp address: 8 or 32 hex digits, each 32-bit word in the host's byte order."""
    raw = bytes.fromhex(hex_text)
    swapped = b"".join(raw[index:index + 4][::-1] for index in range(0, len(raw), 4)) \
        if sys.byteorder == "little" else raw
    address = ipaddress.ip_address(swapped)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def parse_listeners(text: str) -> list[Listener]:
    """The LISTEN sockets of one /proc/net/tcp{,6} table's text."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _LISTEN:
            continue
        address, _, port = fields[1].partition(":")
        try:
            out.append(Listener(_address(address), int(port, 16), int(fields[7]), int(fields[9])))
        except ValueError:
            continue
    return out


def read_listeners(tables: Sequence[str] = TCP_TABLES) -> list[Listener]:
    """Every TCP socket in LISTEN state; a table that does not exist (no IPv6) is skipped."""
    out = []
    for path in tables:
        try:
            with open(path, encoding="ascii", errors="replace") as file:
                out += parse_listeners(file.read())
        except FileNotFoundError:
            continue
    return out


def socket_holders(inodes: Iterable[int], proc: str = "/proc") -> dict[int, list[int]]:
    """The pids seen holding each socket inode; processes whose fds cannot be read are not seen."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    holders: dict[int, list[int]] = {inode: [] for inode in wanted.values()}
    if not wanted:
        return holders
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        directory = os.path.join(proc, entry, "fd")
        try:
            fds = os.listdir(directory)
        except OSError:  # not ours, or gone
            continue
        for fd in fds:
            try:
                inode = wanted.get(os.readlink(os.path.join(directory, fd)))
            except OSError:
                continue
            if inode is not None and int(entry) not in holders[inode]:
                holders[inode].append(int(entry))
    return holders


def process_cgroup(pid: int, proc: str = "/proc") -> str:
    """The process's cgroup path: the unified hierarchy's ("0::"), else systemd's own v1 one; "" if unknown."""
    try:
        with open(os.path.join(proc, str(pid), "cgroup"), encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except OSError:
        return ""
    unified = next((line[len("0::"):] for line in lines if line.startswith("0::")), "")
    # On a hybrid host "0::/" is all the unified hierarchy says; systemd's named v1 hierarchy has the unit.
    if unified not in ("", "/"):
        return unified
    return next((line.partition(":name=systemd:")[2] for line in lines if ":name=systemd:" in line), unified)


def process_name(pid: int, proc: str = "/proc") -> str:
    try:
        with open(os.path.join(proc, str(pid), "comm"), encoding="utf-8", errors="replace") as file:
            return file.read().strip()
    except OSError:
        return "?"
