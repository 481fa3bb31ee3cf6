"""Features newer than systemd 252 are used only where the running manager's Version has them."""

from __future__ import annotations

from typing import Any

import pytest

from pmsd.systemd.bus import MEMORY_PEAK_SINCE, Manager, memory_peak


class Bus:
    def __init__(self, version: str, peak: int) -> None:
        self.version, self.peak = version, peak
        self.asked: list[str] = []

    def get_property(self, destination: bytes, path: bytes, interface: bytes, name: bytes, signature: bytes) -> Any:
        self.asked.append(name.decode())
        return {"Version": self.version.encode(), "MemoryPeak": self.peak}[name.decode()]


@pytest.mark.parametrize(("version", "peak", "expected"), [
    ("252.39-1~deb12u1", 50 << 20, None),  # Debian 12: no MemoryPeak on the bus; not even asked
    ("257.13-1~deb13u1", 50 << 20, 50 << 20),  # Debian 13
    ("257.13-1~deb13u1", 2**64 - 1, None),  # unset (no memory accounting for the unit)
])
def test_memory_peak_is_read_from_255_on(version: str, peak: int, expected: int | None) -> None:
    bus = Bus(version, peak)
    assert memory_peak(Manager(bus, user=True), "pmsd-x.service") == expected
    assert ("MemoryPeak" in bus.asked) is (int(version.split(".")[0]) >= MEMORY_PEAK_SINCE)
