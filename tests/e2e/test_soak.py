"""Soak (issue 19): 100 apps crash-looping with exponential backoff for a minute (PMSD_SOAK_SECONDS=600 for the
release check, PMSD_SOAK_APPS for another count). Sampled twelve times: god's resident memory and CPU time
(/proc), `pmsd ls` latency, the restarts so far. god must not restart, its memory and CPU and the latency of
`ls` must stay flat, and the event stream must be complete: every restart god counted had its exit event.
PMSD_SOAK_REPORT=FILE writes the samples as JSON (README "Reliability" shows them)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median

import pytest

from tests.e2e.conftest import GOD
from tests.e2e.helpers import APPS, Events, Pmsd, systemctl, unit_property, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]
SOAK_S = float(os.environ.get("PMSD_SOAK_SECONDS", "60"))
SOAK_APPS = int(os.environ.get("PMSD_SOAK_APPS", "100"))
SAMPLES = 12
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    at_s: float
    god_rss_kib: int
    god_cpu_s: float
    ls_ms: float
    restarts: int
    exit_events: int


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: proc(5) fields 14 and 15


def _ls_ms(cli: Pmsd) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pmsd", "ls"], capture_output=True, cwd=cli.cwd, env=cli.env, check=True,
                   timeout=60)
    return (time.perf_counter() - began) * 1000


class ExitCounter:
    """Counts each app's exit events from god's stream, reading it while the test waits for its next sample."""

    def __init__(self, events: Events, prefix: str) -> None:
        self.events = events
        self.prefix = prefix
        self.exits: dict[str, int] = {}

    def read_until(self, deadline: float) -> None:
        while (left := deadline - time.monotonic()) > 0:
            try:
                _arrived, event = self.events.lines.get(timeout=left)
            except queue.Empty:
                return
            if event["event"] == "exit" and str(event["app"]).startswith(self.prefix):
                self.exits[event["app"]] = self.exits.get(event["app"], 0) + 1

    @property
    def total(self) -> int:
        return sum(self.exits.values())


def _restarts(cli: Pmsd, prefix: str) -> dict[str, int]:
    return {app["name"]: int(app["pm2_env"]["restart_time"]) for app in cli.jlist() if app["name"].startswith(prefix)}


def test_crash_looping_apps_leave_god_flat(god: Pmsd, token: str, tmp_path: Path) -> None:
    prefix = f"soak{token}-"
    ecosystem = tmp_path / "soak.json"
    ecosystem.write_text(json.dumps({"apps": [
        {"name": f"{prefix}{index}", "script": os.path.join(APPS, "exits.py"), "exp_backoff_restart_delay": 100,
         "max_restarts": 1000000} for index in range(SOAK_APPS)]}))
    events = Events(god)
    counter = ExitCounter(events, prefix)
    try:
        god.run("start", str(ecosystem), timeout=300)
        pid = int(unit_property(god.env, GOD, "MainPID"))
        began = time.monotonic()
        samples: list[Sample] = []
        for index in range(1, SAMPLES + 1):
            counter.read_until(began + SOAK_S * index / SAMPLES)
            assert os.path.exists(f"/proc/{pid}"), f"god ended during the soak: {_god_end(god)}"
            samples.append(Sample(round(time.monotonic() - began, 1), _rss_kib(pid), _cpu_s(pid), _ls_ms(god),
                                  sum(_restarts(god, prefix).values()), counter.total))
        assert int(unit_property(god.env, GOD, "MainPID")) == pid, f"god restarted during the soak: {_god_end(god)}"
        restarts = _restarts(god, prefix)
        # Every restart god counted had its exit event (the stream may still be delivering the last ones).
        wait_for(lambda: (_read_events(counter) and all(counter.exits.get(name, 0) >= count
                                                       for name, count in restarts.items())) or None,
                 20, "an exit event for every restart", describe=lambda: _short(restarts, counter.exits))
    finally:
        deleted = god.run("delete", "all", check=False, timeout=300)
        events.close()
    assert deleted.returncode == 0, deleted.stderr
    # god's backoff restarts, due while the apps were deleted, must not have started any of them again.
    wait_for(lambda: not _units(god, prefix) or None, 20, "no unit of the soak's apps",
             describe=lambda: str(_units(god, prefix)))
    _report(samples)
    _assert_flat(samples)


def _units(cli: Pmsd, prefix: str) -> list[str]:
    listing = systemctl(cli.env, "list-units", "--all", "--plain", "--no-legend", f"pmsd-{prefix}*").stdout
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def _god_end(cli: Pmsd) -> str:
    return ", ".join(f"{name}={unit_property(cli.env, GOD, name)}"
                     for name in ("Result", "NRestarts", "ExecMainCode", "ExecMainStatus", "MainPID"))


def _read_events(counter: ExitCounter) -> bool:
    """Read what the stream has for 0.2 s (wait_for's condition: it reads while it waits)."""
    counter.read_until(time.monotonic() + 0.2)
    return True


def _short(restarts: dict[str, int], exits: dict[str, int]) -> str:
    short = {name: (count, exits.get(name, 0)) for name, count in restarts.items() if exits.get(name, 0) < count}
    return f"(restarts, exit events) where short: {short}"


def _report(samples: list[Sample]) -> None:
    print(f"\nsoak: {SOAK_APPS} crash-looping apps, {SOAK_S:.0f} s")
    print("   at s  god RSS KiB  god CPU %  ls ms  restarts  exit events")
    previous_at, previous_cpu = 0.0, samples[0].god_cpu_s
    for sample in samples:
        span = max(sample.at_s - previous_at, 0.001)
        print(f"{sample.at_s:7.1f}  {sample.god_rss_kib:11}  {100 * (sample.god_cpu_s - previous_cpu) / span:9.1f}  "
              f"{sample.ls_ms:5.0f}  {sample.restarts:8}  {sample.exit_events:11}")
        previous_at, previous_cpu = sample.at_s, sample.god_cpu_s
    report = os.environ.get("PMSD_SOAK_REPORT")
    if report:
        Path(report).write_text(json.dumps([asdict(sample) for sample in samples], indent=1) + "\n")


def _assert_flat(samples: list[Sample]) -> None:
    """The second half against the first (after the first sample, which includes the start of every app)."""
    first, second = samples[1:SAMPLES // 2], samples[SAMPLES // 2:]
    assert max(s.god_rss_kib for s in second) <= max(s.god_rss_kib for s in first) * 1.15 + 1024, samples
    assert median(s.ls_ms for s in second) <= median(s.ls_ms for s in first) * 1.5 + 20, samples
    first_rate = (first[-1].god_cpu_s - first[0].god_cpu_s) / (first[-1].at_s - first[0].at_s)
    second_rate = (second[-1].god_cpu_s - second[0].god_cpu_s) / (second[-1].at_s - second[0].at_s)
    assert second_rate <= first_rate * 1.5 + 0.02, samples
