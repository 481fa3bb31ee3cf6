"""`pmsd monit` and `pmsd ls --watch` in a real terminal against real apps: each runs in an 80x24 window of a
private tmux server (its own socket, so neither the tests' nor the user's tmux sessions are touched), keys are
sent with send-keys, the screen read with capture-pane, and the effect of a key checked with `pmsd jlist`."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import APPS, Pmsd, wait_for
from tests.e2e.tmux import Tmux

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]
SLEEPER = os.path.join(APPS, "sleeper.py")


@pytest.fixture
def tmux(pmsd: Pmsd, token: str) -> Iterator[Tmux]:
    terminal = Tmux(pmsd.env, f"pmsd-monit-{token}")
    try:
        yield terminal
    finally:
        terminal.close()


def _row(screen: str, name: str) -> str:
    return next((line for line in screen.splitlines() if f" {name} " in line), "")


def test_monit_shows_the_apps_and_restarts_the_selected_one(pmsd: Pmsd, tmux: Tmux, token: str) -> None:
    first, second = f"monit-a-{token}", f"monit-b-{token}"
    for name in (first, second):
        pmsd.run("start", SLEEPER, "--name", name)
        pmsd.wait_status(name, "online")
    before = pmsd.app(second)["pm2_env"]["restart_time"]
    tmux.start([sys.executable, "-m", "pmsd", "monit"], pmsd.cwd)

    def both_shown() -> str | None:
        text = tmux.screen()
        return text if first in text and second in text and "%" in text else None

    screen = wait_for(both_shown, 15, "both apps, with a CPU figure, on monit's screen", describe=tmux.screen)
    assert "2 apps, 2 online" in screen
    assert _row(screen, first).startswith(">") and "online" in _row(screen, first)
    assert f"pmsd-{first}.service" in screen  # the selected app's details
    wait_for(lambda: "sleeper" in tmux.screen(), 10, "the first app's start line in the log pane",
             describe=tmux.screen)

    tmux.keys("j")
    wait_for(lambda: _row(tmux.screen(), second).startswith(">"), 5, "the second app selected",
             describe=tmux.screen)
    tmux.keys("r")
    wait_for(lambda: pmsd.app(second)["pm2_env"]["restart_time"] > before, 20, f"{second} restarted",
             describe=lambda: f"{tmux.screen()}\n{pmsd.app(second)['pm2_env']}")
    pmsd.wait_status(second, "online")
    assert pmsd.app(first)["pm2_env"]["restart_time"] == 0  # only the selected app
    wait_for(lambda: "restarted" in tmux.screen(), 5, "the outcome on the status line", describe=tmux.screen)

    tmux.keys("q")
    assert wait_for(lambda: tmux.exit_status() is not None, 5, "monit to exit on q",
                    describe=tmux.screen) and tmux.exit_status() == 0
    assert "pmsd monit ·" not in tmux.screen()  # the terminal was given back (curses' screen left)


def test_monit_stops_an_app_only_once_confirmed(pmsd: Pmsd, tmux: Tmux, token: str) -> None:
    name = f"ms-{token}"  # short enough for the name column at 80 columns
    pmsd.run("start", SLEEPER, "--name", name)
    pmsd.wait_status(name, "online")
    tmux.start([sys.executable, "-m", "pmsd", "monit"], pmsd.cwd)
    wait_for(lambda: name in tmux.screen(), 15, "the app on monit's screen", describe=tmux.screen)
    tmux.keys("s")
    wait_for(lambda: "y: yes" in tmux.screen(), 5, "the question", describe=tmux.screen)
    tmux.keys("n")
    wait_for(lambda: "cancelled" in tmux.screen(), 5, "the stop cancelled", describe=tmux.screen)
    assert pmsd.status(name) == "online"
    tmux.keys("s")
    wait_for(lambda: "y: yes" in tmux.screen(), 5, "the question", describe=tmux.screen)
    tmux.keys("y")
    pmsd.wait_status(name, "stopped", timeout=20)
    wait_for(lambda: "stopped" in _row(tmux.screen(), name), 5, "the stopped status on screen",
             describe=tmux.screen)
    tmux.keys("C-c")  # Ctrl-C ends it as q does
    wait_for(lambda: tmux.exit_status() is not None, 5, "monit to exit on Ctrl-C", describe=tmux.screen)
    assert tmux.exit_status() == 0


def test_monit_to_a_pipe_prints_the_table_once(pmsd: Pmsd, token: str) -> None:
    name = f"monit-pipe-{token}"
    pmsd.run("start", SLEEPER, "--name", name)
    result = pmsd.run("monit", timeout=30)
    assert name in result.stdout and result.stdout.count("┌") == 1 and "\x1b" not in result.stdout


def test_ls_watch_redraws_until_ctrl_c(pmsd: Pmsd, tmux: Tmux, token: str) -> None:
    name = f"watched-{token}"
    pmsd.run("start", SLEEPER, "--name", name)
    tmux.start([sys.executable, "-m", "pmsd", "ls", "--watch"], pmsd.cwd)
    wait_for(lambda: name in tmux.screen() and "Last refresh:" in tmux.screen(), 15, "the table",
             describe=tmux.screen)
    pmsd.run("stop", name)
    wait_for(lambda: "stopped" in tmux.screen(), 10, "the table redrawn with the app stopped",
             describe=tmux.screen)
    assert tmux.screen().count("Last refresh:") == 1  # redrawn in place, not appended
    tmux.keys("C-c")
    wait_for(lambda: tmux.exit_status() is not None, 5, "ls --watch to exit on Ctrl-C", describe=tmux.screen)
    assert tmux.exit_status() == 0
