"""20 CLIs at once on the same apps (issue 19): start, restart, scale, stop and delete mixed, with god running
the commands (pmsd.god.runner forks one child per command) and with god down. Afterwards: every command either
done or cleanly refused (a message, no traceback), no id lost or given twice, the registry and the counters
whole, and the registry and systemd agreeing: every record has its unit, every unit of these apps its record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pmsd.model.record import AppRecord
from tests.e2e.helpers import APPS, Pmsd, systemctl, wait_for

pytestmark = pytest.mark.e2e
SLEEPER = os.path.join(APPS, "sleeper.py")
CLIS = 20


def _commands(prefix: str) -> list[tuple[str, ...]]:
    """20 commands on 4 apps: 8 starts of new apps (two each: one creates, the other restarts it, as PM2 does),
    4 restarts, 2 scales of a cluster app, 3 stops, 3 deletes of apps that may or may not exist yet."""
    names = [f"{prefix}{index}" for index in range(4)]
    commands: list[tuple[str, ...]] = []
    for name in names:
        commands += [("start", SLEEPER, "--name", name)] * 2
    commands += [("restart", name) for name in names]
    commands += [("scale", names[0], "3"), ("scale", names[0], "2")]
    commands += [("stop", names[1]), ("stop", names[2]), ("stop", "all")]
    commands += [("delete", names[3]), ("delete", names[2]), ("delete", names[3])]
    assert len(commands) == CLIS
    return commands


def _run_all(cli: Pmsd, commands: list[tuple[str, ...]], env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    def one(argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pmsd", *argv], capture_output=True, text=True, cwd=cli.cwd,
                              env={**cli.env, **env}, timeout=120, check=False)

    with ThreadPoolExecutor(max_workers=CLIS) as pool:
        return list(pool.map(one, commands))


def _state_dir(cli: Pmsd) -> str:
    return cli.env["PMSD_STATE_DIR"]


def _consistent(cli: Pmsd, prefix: str) -> str | None:
    """None when the registry and systemd agree on the apps named prefix*, else what differs."""
    with open(os.path.join(_state_dir(cli), "registry.json"), encoding="utf-8") as handle:
        registry = json.load(handle)  # whole: a torn file would not parse
    everything = [AppRecord.from_json(app) for app in registry["apps"]]
    records = [record for record in everything if record.name.startswith(prefix)]
    ids = [record.pm_id for record in everything]
    if len(ids) != len(set(ids)):
        return f"ids given twice: {sorted(ids)}"
    listing = systemctl(cli.env, "list-units", "--all", "--plain", "--no-legend", f"pmsd-{prefix}*").stdout
    units = {line.split()[0] for line in listing.splitlines() if line.strip()}
    recorded = {record.unit for record in records}
    running = {unit for unit in units if not unit.endswith((".socket", ".target"))}
    # A stopped app's unit may have been collected: records without a loaded unit must be stopped ones.
    stray = running - recorded
    return f"units without a record: {sorted(stray)}" if stray else None


@pytest.mark.parametrize("god_runs", [True, False], ids=["god", "no-god"])
def test_twenty_clis_at_once_lose_nothing_and_duplicate_nothing(god: Pmsd, token: str, god_runs: bool) -> None:
    prefix = f"cc{token}-"
    env = {} if god_runs else {"PMSD_NO_GOD": "1"}
    began = time.monotonic()
    results = _run_all(god, _commands(prefix), env)
    took = time.monotonic() - began
    done = [result for result in results if result.returncode == 0]
    refused = [result for result in results if result.returncode != 0]
    for result in results:
        assert "Traceback" not in result.stderr, result.stderr
    for result in refused:
        assert "[pmsd][ERROR]" in result.stderr, (result.args, result.stdout, result.stderr)
    print(f"{'god' if god_runs else 'no god'}: {len(done)} done, {len(refused)} refused in {took:.1f} s; "
          f"refusals: {sorted({result.stderr.splitlines()[0][:90] for result in refused})}")
    # How many restarts/stops/deletes find their app depends on scheduling (8 to 15 of 20 were seen done); what
    # may not depend on it: each app's starts create it at least once (a second start is refused as PM2 refuses
    # a script already launched, unless a delete came between), and every refusal says so.
    for index in range(4):
        starts = [result for result in done if result.args[3:] == ["start", SLEEPER, "--name", f"{prefix}{index}"]]
        assert starts, f"no start of {prefix}{index} succeeded: {[r.stderr for r in results if r.returncode]}"
    wait_for(lambda: _consistent(god, prefix) is None or None, 20, "the registry and systemd to agree",
             describe=lambda: str(_consistent(god, prefix)))
    with open(os.path.join(_state_dir(god), "god-counters.json"), encoding="utf-8") as handle:
        json.load(handle)
    listed = god.jlist()
    assert len({app["pm_id"] for app in listed}) == len(listed)
