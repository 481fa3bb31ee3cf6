"""journald under pressure and journald hung (issue 19).

- A chatty app writes a 200,000-line burst next to a quiet one: journald's rate limit (10,000 lines per 30 s by
  default) drops most of the burst, and, in a user manager, the quiet app's lines too (the budget is shared);
  `pmsd logs` and `pmsd describe` say what journald dropped once journald reports it (at the end of the
  window). The figures are printed.
- journald stopped (SIGSTOP of the test harness's own journald: a hung journald, which is worse than a dead
  one, whose socket systemd re-activates): pmsd's commands still finish, god still answers, and the apps'
  lines written meanwhile reach the journal once it runs again.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import APPS, Pmsd, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]
BURST = 200_000
HARNESS_JOURNALD_PID = "/run/pmsd-harness/journald.pid"  # tests/harness/systemd-user.sh started it
QUIET = "import time\nfor i in range(150):\n    print(f'quiet {i}', flush=True)\n    time.sleep(0.02)\ntime.sleep(3600)"
CHATTY = (f"import sys, time\nfor i in range({BURST}): sys.stdout.write(f'burst {{i}}\\n')\nsys.stdout.flush()\n"
          "time.sleep(3600)")


def _lines(cli: Pmsd, name: str, count: int) -> list[str]:
    return cli.run("logs", name, "--raw", "--nostream", "--lines", str(count), timeout=120).stdout.splitlines()


@pytest.mark.slow
def test_a_burst_next_to_a_quiet_app_is_measured_and_reported(pmsd: Pmsd, token: str) -> None:
    """journald rate-limits per *system* unit (journald-server.c tests c->unit): every unit of a user manager
    shares user@UID.service's budget, so the burst costs the quiet app its lines too (system units each have
    their own). What pmsd owes: say so, in both apps' `pmsd logs` and `describe`, and doctor's fix."""
    quiet, chatty = f"quiet-{token}", f"chatty-{token}"
    began = time.monotonic()
    pmsd.run("start", sys.executable, "--name", quiet, "--", "-c", QUIET)
    pmsd.run("start", sys.executable, "--name", chatty, "--", "-c", CHATTY)

    def reported() -> str | None:
        pmsd.run("restart", quiet)  # a message after the window makes journald write its report
        warning = pmsd.run("logs", quiet, "--nostream", "--lines", "1").stderr
        return warning if "journald dropped" in warning else None

    warning = wait_for(reported, 90, "journald's report of the dropped lines, shown by pmsd logs of the quiet app")
    took = time.monotonic() - began
    kept_quiet = [line for line in _lines(pmsd, quiet, 1000) if line.startswith("quiet ")]
    kept_burst = [line for line in _lines(pmsd, chatty, BURST + 100) if line.startswith("burst ")]
    print(f"\njournald pressure: chatty app kept {len(kept_burst)} of {BURST} lines, the quiet app "
          f"{len(kept_quiet)} of its first run's 150 (with its restarts' lines, which may repeat numbers); "
          f"reported after {took:.0f} s: {warning.strip()}")
    assert len(kept_burst) < BURST  # journald's default limit applies: the scenario the warning is for
    assert "journald dropped" in pmsd.run("logs", chatty, "--nostream", "--lines", "1").stderr
    assert "journald dropped" in pmsd.run("describe", chatty).stdout


@pytest.fixture
def harness_journald() -> Iterator[int]:
    try:
        with open(HARNESS_JOURNALD_PID, encoding="ascii") as handle:
            pid = int(handle.read())
        os.kill(pid, 0)
    except (OSError, ValueError):
        pytest.skip("journald was not started by tests/harness/systemd-user.sh: not ours to stop")
    yield pid
    os.kill(pid, signal.SIGCONT)


def test_commands_finish_while_journald_is_hung(god: Pmsd, token: str, harness_journald: int) -> None:
    name, other = f"jh-{token}", f"jh2-{token}"
    god.run("start", os.path.join(APPS, "talker.py"), "--name", name, env={"LINES": "5", "TAG": name})
    # Read by journald before it stops: lines of a process that is gone when journald reads them lose their
    # unit (journald looks the sender's cgroup up then), and `pmsd logs` would not find them.
    wait_for(lambda: len(_lines(god, name, 100)) >= 5 or None, 20, "the app's first lines in the journal")
    os.kill(harness_journald, signal.SIGSTOP)
    try:
        began = time.monotonic()
        for argv in (("start", os.path.join(APPS, "talker.py"), "--name", other), ("ls",), ("restart", name),
                     ("stop", other), ("jlist",), ("delete", other), ("ping",)):
            result = god.run(*argv, check=False, env={"LINES": "5", "TAG": other}, timeout=30)
            assert result.returncode == 0, (argv, result.stderr)
        took = time.monotonic() - began
        assert god.status(name) == "online"
    finally:
        os.kill(harness_journald, signal.SIGCONT)
    print(f"\njournald hung: start, ls, restart, stop, jlist, delete, ping took {took:.1f} s together")
    # What the app wrote while journald was stopped reaches the journal once it runs again (its restart
    # printed 5 lines into a stream journald had not read yet).
    wait_for(lambda: len([line for line in _lines(god, name, 100) if line.startswith(f"{name} out")]) >= 10 or None,
             20, "the lines written while journald was stopped")
