"""`pmsd monit` on a terminal, and `pmsd ls --watch`.

The screen is drawn with Python's own `curses` module. It ships with every Python (Debian's python3 included),
imports in about a millisecond, and needs nothing but the terminfo entry every SSH session already has; the
four widgets monit needs (a list, a few detail rows, a log pane, a status line) are plain rows of text, laid
out by pmsd.render.monit. A toolkit (textual, urwid) would be one more dependency to package and 100 ms or
more of imports for a command that is often run over SSH; blessed/npyscreen add little over curses for this.

One thread and one select(): the keyboard, the journal's change descriptor (the selected app's lines, within
journald's 250 ms) and a self-pipe for SIGWINCH wake it; otherwise it sleeps until the next one-second refresh
(the process list from god in one round trip, or from systemd when god is down). A frame is drawn only when it
differs from the last one (once a second when nothing happens: the clock and the figures move), and curses
sends only the cells that changed. The terminal is given back on `q`, Ctrl-C, SIGTERM, and any error.
"""

from __future__ import annotations

import contextlib
import curses
import locale
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from pmsd.api.logs import LogLine, Tail, last_lines, sources_for
from pmsd.api.query import list_processes
from pmsd.context import Context
from pmsd.errors import ExitStatus, PmsdError
from pmsd.model.record import now_ms
from pmsd.model.status import ProcessInfo
from pmsd.render.monit import DOING, Action, Line, Monit, Style, exit_reason, layout, render
from pmsd.render.table import text_width

if TYPE_CHECKING:
    from pmsd.render.monit import Outcome

REFRESH_S = 1.0
HISTORY_LINES = 200  # log lines loaded when an app is selected
KEYS = {curses.KEY_UP: "up", curses.KEY_DOWN: "down", curses.KEY_PPAGE: "pgup", curses.KEY_NPAGE: "pgdn",
        curses.KEY_HOME: "home", curses.KEY_END: "end"}
ESC_DELAY_MS = 25  # how long a lone Esc waits for the rest of a key's sequence (curses: a whole second)


def run_monit(ctx: Context) -> int | None:
    """The live view until `q` or Ctrl-C; None when there is no terminal to draw on (output to a pipe or a file,
    or a terminal curses does not know): the caller prints the table once instead."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None
    with contextlib.suppress(locale.Error):  # an unknown LANG: the C locale, drawn in ASCII
        locale.setlocale(locale.LC_ALL, "")  # curses draws UTF-8 only where the locale says so
    try:
        curses.setupterm(None, sys.stdout.fileno())
    except curses.error:
        print(f"[pmsd][WARN] monit: curses does not know this terminal (TERM={os.environ.get('TERM', '')!r}); "
              "printing the list once", file=sys.stderr)
        return None
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` ends it as q does: the terminal is restored
    try:
        return int(curses.wrapper(lambda screen: _Loop(ctx, screen).run()))
    except KeyboardInterrupt:
        return ExitStatus.OK
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(number: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def unit_cpu_nsec(info: ProcessInfo) -> int | None:
    """The CPU time of the app's whole cgroup, as the process list read it just now (ProcessInfo.cpu_seconds:
    cpu.stat or systemd's CPUUsageNSec, else the sum over the cgroup's processes on hybrid hosts)."""
    return None if info.cpu_seconds is None else int(info.cpu_seconds * 1e9)


def lifecycle_call(ctx: Context) -> Callable[[str, str], Sequence[Outcome]]:
    """restart/stop/reload of one target through pmsd.api.lifecycle, as `pmsd restart <id>` does."""

    def call(verb: str, target: str) -> Sequence[Outcome]:
        from pmsd.api import lifecycle  # imported on the first key that needs it: monit starts without it

        outcomes: Sequence[Outcome] = getattr(lifecycle, verb)(ctx, target)
        return outcomes

    return call


class _Feed:
    """What the model is fed: the process list and CPU counters each second, the selected app's log lines,
    and how its last run ended (systemd's view of its unit, read when something about it changed)."""

    def __init__(self, ctx: Context, model: Monit) -> None:
        self.ctx, self.model = ctx, model
        self.tail: Tail | None = None
        self.details_of: tuple[object, ...] = ()

    def refresh(self) -> None:
        try:
            infos = list_processes(self.ctx)
        except PmsdError as error:
            self.model.problem = error.message + (f" ({error.hint})" if error.hint else "")
            return
        self.model.problem = None
        self.model.update(infos, {info.pm_id: unit_cpu_nsec(info) for info in infos}, time.monotonic())
        self.warnings()
        self.follow_selected()

    def warnings(self) -> None:
        """Warnings the API left in the context (a registry read from its backup, lingering off) join the
        status line."""
        text, style = self.model.message or ("", Style.WARN)
        new = [warning for warning in dict.fromkeys(self.ctx.warnings) if warning not in text]
        self.ctx.warnings.clear()
        if new:  # a warning every refresh repeats (the registry's backup read again) is shown once
            self.model.say("; ".join(filter(None, [text, *new])), style)

    def follow_selected(self) -> None:
        """Open the selected app's logs when the selection moved to another app."""
        info = self.model.selected
        owner = info.pm_id if info is not None else None
        if owner == self.model.log_owner and (self.tail is not None or owner is None):
            return
        self.close()
        if info is None:
            self.model.set_logs(None, [], "")
            return
        sources = sources_for(info.record)
        where = ", ".join(source.path or "journal" for source in sources) or "none (disable_logs)"
        try:
            self.tail = Tail(sources, self.ctx.user)
            history = last_lines(sources, HISTORY_LINES, self.ctx.user, set())
        except OSError as error:  # no libsystemd, a journal that cannot be read
            self.close()
            self.model.set_logs(owner, [], f"{where}: cannot be read ({error})")
            return
        self.model.set_logs(owner, [_entry(line) for line in history], where)

    def new_logs(self) -> None:
        if self.tail is None:
            return
        try:
            self.model.add_logs([_entry(line) for line in self.tail.read()])
        except OSError as error:
            self.close()
            self.model.log_where += f": reading stopped ({error})"

    def fileno(self) -> int | None:
        return self.tail.fileno() if self.tail is not None else None

    def details(self) -> None:
        """The selected app's last exit, read from systemd when its run changed (not every second)."""
        info = self.model.selected
        key = (info.pm_id, info.status, info.restart_time, info.invocation_id) if info is not None else ()
        if info is None or key == self.details_of:
            return
        self.details_of = key
        try:
            state = self.ctx.manager.service_state(info.unit)
        except PmsdError as error:
            self.model.exit_reason = f"? ({error.message})"
            return
        self.model.exit_reason = exit_reason(info, state)

    def close(self) -> None:
        if self.tail is not None:
            self.tail.close()
            self.tail = None


def _entry(line: LogLine) -> tuple[int, str, str]:
    return line.usec, line.stream, line.message


class _Loop:
    """The curses side: draws frames, reads keys, sleeps in select() between events."""

    def __init__(self, ctx: Context, screen: curses.window) -> None:
        self.ctx, self.screen = ctx, screen
        self.model = Monit()
        self.feed = _Feed(ctx, self.model)
        self.unicode = locale.getpreferredencoding(False).upper().replace("-", "") == "UTF8"
        self.encoding = locale.getpreferredencoding(False)
        self.attrs = _attributes()
        self.last: list[Line] | None = None
        self.resized = False

    def run(self) -> int:
        with contextlib.suppress(curses.error):
            curses.curs_set(0)
        curses.set_escdelay(ESC_DELAY_MS)
        self.screen.nodelay(True)
        self.screen.keypad(True)
        wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(wake_write)
        old_winch = signal.signal(signal.SIGWINCH, self._on_resize)
        try:
            self._events(wake_read)
        finally:
            signal.signal(signal.SIGWINCH, old_winch)
            signal.set_wakeup_fd(old_wakeup)
            os.close(wake_read)
            os.close(wake_write)
            self.feed.close()
        return ExitStatus.OK

    def _on_resize(self, number: int, frame: FrameType | None) -> None:
        self.resized = True  # handled in the loop: the wakeup pipe has woken select()

    def _events(self, wake: int) -> None:
        next_refresh = 0.0
        while not self.model.done:
            if time.monotonic() >= next_refresh:
                self.feed.refresh()
                next_refresh = time.monotonic() + REFRESH_S
            self._draw()
            self.feed.details()  # after the first frame: reading a unit may import pystemd (~100 ms)
            self._draw()
            watched = [sys.stdin.fileno(), wake] + [fd for fd in (self.feed.fileno(),) if fd is not None]
            readable, _, _ = select.select(watched, [], [], max(0.0, next_refresh - time.monotonic()))
            if wake in readable:
                _drain(wake)
            if self.resized:
                self._resize()
            if self.feed.tail is not None and set(readable) - {sys.stdin.fileno(), wake}:
                self.feed.new_logs()
            elif time.monotonic() >= next_refresh:
                self.feed.new_logs()  # files have no descriptor to wait on: looked at each second
            if sys.stdin.fileno() in readable:
                self._keys()

    def _keys(self) -> None:
        page = layout(self.screen.getmaxyx()[0], len(self.model.infos)).log_rows
        while True:
            try:
                key = self.screen.get_wch()
            except curses.error:
                return  # no more input
            if key == curses.KEY_RESIZE:
                self.last = None
                continue
            name = KEYS.get(key) if isinstance(key, int) else "esc" if key == "\x1b" else key
            if name is None:
                continue
            action = self.model.key(name, page)
            self.feed.follow_selected()
            if action is not None:
                self._perform(action)
            if self.model.done:
                return

    def _perform(self, action: Action) -> None:
        """Say what is being done, carry it out (the screen waits meanwhile), then show the list as it is now."""
        self.model.say(f"{DOING[action.verb]} {action.label}…", Style.WARN)
        self._draw()
        self.model.perform(action, lifecycle_call(self.ctx))
        self.feed.warnings()
        self.feed.refresh()

    def _resize(self) -> None:
        self.resized = False
        try:
            size = os.get_terminal_size(sys.stdout.fileno())
        except OSError:
            return
        curses.resizeterm(size.lines, size.columns)
        self.screen.clear()
        self.last = None

    def _draw(self) -> None:
        height, width = self.screen.getmaxyx()
        frame = render(self.model, width, height, now_ms())
        if frame == self.last:
            return
        self.last = frame
        self.screen.erase()
        for row, line in enumerate(frame):
            shown = line if self.unicode else line.ascii()
            column = 0
            for text, style in shown.segments:
                piece = text if self.unicode else text.encode(self.encoding, "replace").decode(self.encoding)
                attr = self.attrs[style] | (curses.A_REVERSE if line.selected else 0)
                with contextlib.suppress(curses.error):  # the last cell of the screen: curses cannot move past it
                    self.screen.addstr(row, column, piece, attr)
                column += text_width(piece)
        self.screen.noutrefresh()
        curses.doupdate()


def _attributes() -> dict[Style, int]:
    colour = curses.has_colors() and "NO_COLOR" not in os.environ
    pairs = {Style.GOOD: curses.COLOR_GREEN, Style.BAD: curses.COLOR_RED, Style.WARN: curses.COLOR_YELLOW,
             Style.ERROR: curses.COLOR_RED, Style.HEADER: curses.COLOR_CYAN}
    attrs = {style: 0 for style in Style}
    if colour:
        with contextlib.suppress(curses.error):
            curses.use_default_colors()
        for number, (style, foreground) in enumerate(pairs.items(), start=1):
            with contextlib.suppress(curses.error):
                curses.init_pair(number, foreground, -1)
                attrs[style] = curses.color_pair(number)
    attrs[Style.TITLE] = curses.A_REVERSE | curses.A_BOLD
    attrs[Style.HEADER] |= curses.A_BOLD
    attrs[Style.ERROR] |= curses.A_BOLD
    attrs[Style.DIM] = curses.A_DIM
    return attrs


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 512):
            pass


# ---------------------------------------------------------------------------------------------- ls --watch


def refresh(produce: Callable[[], str], interval_s: float = REFRESH_S, out: TextIO | None = None) -> int:
    """`pmsd ls --watch`: the table again every interval_s until Ctrl-C, as `pm2 ls --watch`. On a terminal it
    is redrawn in place (no flicker: rows are overwritten, not cleared first); to a pipe or file each table is
    printed after the last, under its time, so that a log of them can be kept. A refresh that fails (systemd
    unreachable) shows why and the next one tries again."""
    out = out if out is not None else sys.stdout
    terminal = out.isatty()
    try:
        if terminal:
            out.write("\x1b[?25l\x1b[2J")  # hide the cursor, clear once
        while True:
            began = time.monotonic()
            try:
                body = produce()
            except PmsdError as error:
                body = f"[pmsd][ERROR] {error}\n"
            header = f"Last refresh: {time.strftime('%H:%M:%S')} (every {interval_s:g} s; Ctrl-C to stop)\n"
            if terminal:
                rows = (header + body).splitlines()
                out.write("\x1b[H" + "".join(row + "\x1b[K\n" for row in rows) + "\x1b[J")
            else:
                out.write(header + body)
            out.flush()
            time.sleep(max(0.0, interval_s - (time.monotonic() - began)))
    except KeyboardInterrupt:
        return ExitStatus.OK
    finally:
        if terminal:
            out.write("\x1b[?25h")
            out.flush()
