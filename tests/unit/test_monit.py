"""`pmsd monit`'s model and screen (pmsd.render.monit) with no terminal, its curses-free parts (pmsd.cli.monit),
`pmsd ls --watch`, and what both print when their output is not a terminal."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from pmsd.api.logs import Source, Tail
from pmsd.cli import monit as cli_monit
from pmsd.errors import NotFoundError, PmsdError
from pmsd.model.status import ProcessInfo, Status
from pmsd.render.monit import (
    HISTORY,
    SPARK,
    Action,
    History,
    Monit,
    Style,
    exit_reason,
    fit,
    layout,
    memory_scale,
    printable,
    render,
    sparkline,
)
from pmsd.systemd.states import ActiveState
from tests.unit.cli_harness import Env, make_env, run
from tests.unit.helpers import display_width, make_record, make_state

NOW_MS = 1_700_000_100_000


def _info(pm_id: int = 0, name: str = "api", status: Status = Status.ONLINE, invocation: str = "run1",
          memory_bytes: int = 12 << 20, **spec: Any) -> ProcessInfo:
    running = status is Status.ONLINE
    return ProcessInfo(
        record=make_record(pm_id=pm_id, name=name, **spec), unit=f"pmsd-{name}.service", status=status,
        pid=4000 + pm_id if running else 0, restart_time=pm_id, unstable_restarts=0,
        uptime_since_ms=NOW_MS - 65_000 if running else 0, memory_bytes=memory_bytes if running else 0,
        cpu_percent=1.5, exit_code=None if running else 1, invocation_id=invocation if running else "",
        control_group=f"/user.slice/pmsd-{name}.service")


def _model(count: int = 2, samples: int = 5) -> Monit:
    model = Monit()
    infos = [_info(pm_id, f"app{pm_id}") for pm_id in range(count)]
    for second in range(samples):
        model.update(infos, {info.pm_id: second * 200_000_000 for info in infos}, float(second))
    return model


# ------------------------------------------------------------------------------------------ sparklines


def test_sparkline_maps_the_scale_to_eight_levels() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8, 0, 7) == SPARK
    assert sparkline([7, 0], 2, 0, 7) == "█▁"


def test_sparkline_is_right_aligned_and_keeps_the_newest() -> None:
    assert sparkline([7], 4, 0, 7) == "   █"
    assert sparkline(list(range(8)), 3, 0, 7) == "▆▇█"
    assert sparkline([1, 2], 0, 0, 7) == ""


def test_sparkline_shows_a_stopped_sample_as_a_gap_and_clamps_outliers() -> None:
    assert sparkline([None, 7, None], 3, 0, 7) == " █ "
    assert sparkline([-5, 100], 2, 0, 7) == "▁█"
    assert sparkline([3, 3], 2, 5, 5) == "▁▁"  # an empty scale never divides by zero


def test_memory_scale_draws_steady_memory_halfway_and_noise_flat() -> None:
    steady = [100 << 20] * 10
    assert sparkline(steady, 10, *memory_scale(steady)) == "▅" * 10
    noisy = [(100 << 20) + (i % 2) * 4096 for i in range(10)]
    assert len(set(sparkline(noisy, 10, *memory_scale(noisy)))) == 1
    leak = [(100 + 10 * i) << 20 for i in range(8)]
    assert sparkline(leak, 8, *memory_scale(leak)) == SPARK
    assert memory_scale([None, None]) == (0.0, 1.0)


# -------------------------------------------------------------------------------------------- history


def test_cpu_is_the_counter_delta_over_the_interval() -> None:
    history = History()
    history.add(_info(), 0, 10.0)
    history.add(_info(), 500_000_000, 11.0)  # half a second of CPU in one second
    history.add(_info(), 2_500_000_000, 12.0)  # two CPUs busy
    assert list(history.cpu) == [None, 50.0, 200.0]
    assert list(history.memory) == [12 << 20] * 3


def test_cpu_starts_again_with_a_new_run_and_is_a_gap_while_stopped() -> None:
    history = History()
    history.add(_info(), 9_000_000_000, 1.0)
    history.add(_info(invocation="run2"), 100_000_000, 2.0)  # restarted: the counter began again at 0
    history.add(_info(status=Status.STOPPED), None, 3.0)
    history.add(_info(invocation="run3"), 0, 4.0)
    history.add(_info(invocation="run3"), 10_000_000, 5.0)
    assert list(history.cpu) == [None, None, None, None, 1.0]
    assert list(history.memory)[2] is None


def test_history_keeps_the_last_samples_only() -> None:
    history = History()
    for second in range(HISTORY + 50):
        history.add(_info(), second * 10_000_000, float(second))
    assert len(history.cpu) == len(history.memory) == HISTORY


def test_update_forgets_deleted_apps_and_keeps_the_selection_by_id() -> None:
    model = _model(3)
    model.key("down", 10)
    assert model.selected_id == 1
    model.update([_info(1, "app1"), _info(0, "app0"), _info(2, "app2")], {}, 10.0)  # another order
    assert model.selected is not None and model.selected.name == "app1"
    model.update([_info(0, "app0"), _info(1, "app1"), _info(2, "app2")], {}, 11.0)
    model.update([_info(0, "app0"), _info(2, "app2")], {}, 12.0)  # app1 deleted: the app in its row
    assert model.selected_id == 2 and set(model.history) == {0, 2}
    model.update([], {}, 13.0)
    assert model.selected is None and model.selected_id is None


# ------------------------------------------------------------------------------------------------ keys


def test_selection_moves_and_wraps_around() -> None:
    model = _model(3)
    assert model.selected_id == 0
    for key, expected in (("down", 1), ("j", 2), ("down", 0), ("up", 2), ("k", 1), ("G", 2), ("g", 0)):
        assert model.key(key, 10) is None
        assert model.selected_id == expected, key


def test_keys_on_an_empty_list_do_nothing() -> None:
    model = Monit()
    for key in ("down", "up", "r", "s", "l", "pgup", "pgdn", "home", "end", "x"):
        assert model.key(key, 10) is None
    assert model.selected is None and not model.done


def test_restart_and_reload_act_at_once_on_the_selected_app() -> None:
    model = _model(2)
    model.key("j", 10)
    assert model.key("r", 10) == Action("restart", 1, "app1")
    assert model.key("l", 10) == Action("reload", 1, "app1")
    assert model.key("R", 10) == Action("reload", 1, "app1")


def test_stop_asks_first() -> None:
    model = _model(2)
    assert model.key("s", 10) is None
    assert model.message is not None and "y: yes" in model.message[0]
    assert model.key("q", 10) is None  # any other key cancels, even q: nothing is stopped, nothing quits
    assert not model.done and model.message is not None and "cancelled" in model.message[0]
    model.key("s", 10)
    assert model.key("y", 10) == Action("stop", 0, "app0")


def test_q_quits_and_question_mark_toggles_the_help() -> None:
    model = _model(1)
    model.key("?", 10)
    assert model.show_help
    assert any("restart it" in line.text for line in render(model, 80, 24, NOW_MS))
    model.key("esc", 10)
    assert not model.show_help
    model.key("q", 10)
    assert model.done


def test_logs_scroll_by_pages_and_stay_put_when_lines_arrive() -> None:
    model = _model(1)
    model.set_logs(0, [(NOW_MS * 1000, "out", f"line {n}") for n in range(100)], "journal")
    model.key("pgup", 10)
    assert model.log_offset == 10
    model.key("pgdn", 10)
    model.key("pgdn", 10)
    assert model.log_offset == 0  # clamped: the newest line is the bottom
    model.key("home", 10)
    assert model.log_offset == 90
    model.add_logs([(NOW_MS * 1000, "out", "new")])
    assert model.log_offset == 91  # the lines shown did not move
    model.key("end", 10)
    assert model.log_offset == 0
    model.add_logs([(NOW_MS * 1000, "out", "newer")])
    assert model.log_offset == 0  # following
    lines = [line.text for line in render(model, 80, 24, NOW_MS)]
    assert "newer" in lines[-2] and any("logs: journal" in line and "following" in line for line in lines)


# --------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class _Done:
    action: str
    pm_id: int
    name: str


def test_perform_calls_the_api_by_id_and_says_what_happened() -> None:
    model = _model(2)
    calls: list[tuple[str, str]] = []

    def call(verb: str, target: str) -> Sequence[_Done]:
        calls.append((verb, target))
        return [_Done("restarted", 1, "app1")]

    model.perform(Action("restart", 1, "app1"), call)
    assert calls == [("restart", "1")]
    assert model.message == ("app1 (id 1) restarted", Style.GOOD)


def test_perform_shows_an_error_instead_of_raising() -> None:
    model = _model(1)

    def call(verb: str, target: str) -> Sequence[_Done]:
        raise NotFoundError("no app matches 0", "`pmsd ls` lists ids and names")

    model.perform(Action("stop", 0, "app0"), call)
    assert model.message is not None and model.message[1] is Style.ERROR
    assert model.message[0] == "stop app0 (id 0) failed: no app matches 0 (`pmsd ls` lists ids and names)"


def test_exit_reason_says_how_the_last_run_ended() -> None:
    failed = make_state(active_state=ActiveState.FAILED, sub_state="failed", result="exit-code",
                        exec_main_code=1, exec_main_status=3)
    assert exit_reason(_info(status=Status.ERRORED), failed) == "exited with status 3 (exit-code)"
    killed = make_state(active_state=ActiveState.FAILED, result="oom-kill", exec_main_code=2, exec_main_status=9)
    assert exit_reason(_info(status=Status.STOPPED), killed) == "killed by signal 9 (oom-kill)"
    assert exit_reason(_info(), make_state()) == "- (running)"
    assert exit_reason(_info(status=Status.STOPPED), None) == "exit code 1"
    assert "collected" in exit_reason(replace(_info(status=Status.STOPPED), exit_code=None), None)


# ---------------------------------------------------------------------------------------------- layout


def test_80x24_has_the_list_details_and_logs() -> None:
    model = _model(2)
    model.set_logs(0, [(NOW_MS * 1000, "out", "hello from app0")], "journal")
    model.exit_reason = "- (running)"
    lines = render(model, 80, 24, NOW_MS)
    assert len(lines) == 24
    assert all(display_width(line.text) == 80 for line in lines)
    texts = [line.text for line in lines]
    assert texts[0].startswith(" pmsd monit · 2 apps, 2 online")
    assert texts[1].split()[:6] == ["id", "name", "status", "↺", "cpu", "cpu,"]
    assert texts[2].startswith(">") and "app0" in texts[2] and "online" in texts[2] and "20.0%" in texts[2]
    assert lines[2].selected and not lines[3].selected
    assert "pmsd-app0.service" in texts[4]
    assert "max_restarts 16" in texts[6] and "last exit: - (running)" in texts[7]
    assert "logs: journal" in texts[8] and "hello from app0" in texts[9]
    assert "q quit" in texts[-1]
    assert layout(24, 2).log_rows == 14


def test_a_long_list_scrolls_to_the_selection() -> None:
    model = _model(30)
    assert layout(24, 30).list_rows == 8
    for _ in range(12):
        model.key("down", 10)
    texts = [line.text for line in render(model, 80, 24, NOW_MS)]
    shown = [text for text in texts[2:10]]
    assert any(text.startswith(">12 app12") for text in shown), shown


@pytest.mark.parametrize("width", [0, 1, 5, 12, 20, 33, 40, 79, 200])
@pytest.mark.parametrize("height", [0, 1, 2, 3, 4, 6, 9, 10, 11, 24])
def test_any_terminal_size_renders_without_breaking(width: int, height: int) -> None:
    model = _model(4)
    model.set_logs(0, [(NOW_MS * 1000, "err", "漢字 wide\tand \x1b[31mescaped")], "journal")
    for show_help in (False, True):
        model.show_help = show_help
        lines = render(model, width, height, NOW_MS)
        assert len(lines) <= height
        assert all(display_width(line.text) == width for line in lines), [line.text for line in lines]


def test_narrow_terminals_drop_the_sparklines_then_shorten_names() -> None:
    model = _model(1)
    assert "▁" in render(model, 80, 24, NOW_MS)[2].text or "█" in render(model, 80, 24, NOW_MS)[2].text
    row = render(model, 44, 24, NOW_MS)[2].text
    assert not set(row) & set(SPARK) and "app0" in row and "online" in row
    assert fit("worker-with-a-long-name", 8, "…") == "worker-…"
    assert fit("漢字漢字", 5) == "漢字 "


def test_ascii_lines_for_a_locale_that_is_not_utf8() -> None:
    model = _model(2)
    model.show_help = True
    for line in render(model, 100, 30, NOW_MS):
        ascii_line = line.ascii()
        assert ascii_line.text.isascii(), ascii_line.text
        assert len(ascii_line.text) == display_width(line.text)  # one column for one: the layout holds


def test_log_messages_cannot_move_the_cursor() -> None:
    assert printable("a\x1b[2Jb\tc\r") == "a?[2Jb    c?"


def test_no_apps_says_how_to_add_one() -> None:
    texts = [line.text for line in render(Monit(), 80, 24, NOW_MS)]
    assert "0 apps" in texts[0] and any("pmsd start" in text for text in texts)


# ------------------------------------------------------------------------------------- the curses side


def test_cpu_counter_of_a_stopped_app_is_not_read() -> None:
    assert cli_monit.unit_cpu_nsec(_info(status=Status.STOPPED)) is None


def test_a_failed_refresh_is_shown_and_the_next_one_clears_it(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Monit()
    results: list[Any] = [PmsdError("cannot reach the user manager", "is it running?"), [_info()], [_info()]]

    def listing(ctx: object) -> list[ProcessInfo]:
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return list(result)

    monkeypatch.setattr(cli_monit, "list_processes", listing)
    monkeypatch.setattr(cli_monit, "unit_cpu_nsec", lambda info: None)
    monkeypatch.setattr(cli_monit._Feed, "follow_selected", lambda self: None)
    ctx: Any = type("Ctx", (), {"warnings": ["the registry was read from its backup"], "user": True})()
    feed = cli_monit._Feed(ctx, model)
    feed.refresh()
    assert model.problem == "cannot reach the user manager (is it running?)"
    assert render(model, 80, 24, NOW_MS)[-1].segments[0][1] is Style.ERROR
    feed.refresh()
    assert model.problem is None and len(model.infos) == 1
    assert model.message == ("the registry was read from its backup", Style.WARN)
    ctx.warnings.append("the registry was read from its backup")  # again at the next read: shown once
    feed.refresh()
    assert model.message == ("the registry was read from its backup", Style.WARN) and not ctx.warnings


def test_tail_reads_only_what_was_written_since(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_text("before\n")
    source = Source(make_record(), "out", path=str(path))
    with Tail([source], True) as tail:
        assert tail.fileno() is None  # files only: nothing to select() on, read() looks each time
        assert tail.read() == []
        with path.open("a") as handle:
            handle.write("one\ntwo\npart")
        assert [line.message for line in tail.read()] == ["one", "two"]
        with path.open("a") as handle:
            handle.write("ial\n")
        assert [line.message for line in tail.read()] == ["partial"]


# ---------------------------------------------------------------------------------------------- the CLI


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    return make_env(tmp_path, monkeypatch)


@pytest.mark.parametrize("command", ["monit", "imonit"])
@pytest.mark.parametrize("prefix", [[], ["--user"]], ids=["fast", "typer"])
def test_monit_not_on_a_terminal_prints_the_table_once(env: Env, capsys: pytest.CaptureFixture[str],
                                                         command: str, prefix: list[str]) -> None:
    result = run(capsys, *prefix, command)
    assert result.status == 0, result
    assert "│ id │ name" in result.out and result.out.count("┌") == 1
    assert "\x1b" not in result.out


def _ctrl_c_at_the_third_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """time.sleep replaced: the waits asked for are recorded, and the third one is interrupted by Ctrl-C."""
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", sleep)
    return sleeps


@pytest.mark.parametrize("prefix", [[], ["--user"]], ids=["fast", "typer"])
def test_ls_watch_to_a_pipe_prints_a_table_each_second_until_ctrl_c(
        env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, prefix: list[str]) -> None:
    sleeps = _ctrl_c_at_the_third_sleep(monkeypatch)
    result = run(capsys, *prefix, "ls", "--watch", "--sort", "name:desc")
    assert result.status == 0, result
    assert result.out.count("Last refresh: ") == 3 and result.out.count("│ id │ name") == 3
    assert "\x1b" not in result.out and all(0 < seconds <= 1 for seconds in sleeps)


def test_ls_watch_refuses_a_bad_sort_before_watching(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "ls", "--watch", "--sort", "size")
    assert result.status == 2 and "--sort 'size'" in result.err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ls_watch_on_a_terminal_redraws_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    frames: Iterator[str | PmsdError] = iter(["table 1\n", PmsdError("systemd is not reachable", "start it"),
                                               "table 2\n"])

    def produce() -> str:
        frame = next(frames)
        if isinstance(frame, Exception):
            raise frame
        return frame

    _ctrl_c_at_the_third_sleep(monkeypatch)
    out = _Terminal()
    assert cli_monit.refresh(produce, out=out) == 0
    text = out.getvalue()
    assert text.startswith("\x1b[?25l\x1b[2J") and text.endswith("\x1b[?25h")  # the cursor comes back
    assert text.count("\x1b[H") == 3 and "table 1\x1b[K\n" in text and "table 2\x1b[K\n" in text
    assert "[pmsd][ERROR] systemd is not reachable" in text  # shown, and the next refresh came


def test_monit_help_lists_its_keys(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "monit", "--help")
    assert result.status == 0
    text = " ".join(result.out.split())
    for words in ("r restart", "s stop", "l reload", "PgUp/PgDn", "q or Ctrl-C quit", "`pmsd ls` table once"):
        assert words in text, words
    assert os.environ.get("PMSD_NO_GOD") == "1"
