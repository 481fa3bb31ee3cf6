"""`pmsd monit`'s screen without the terminal: each app's recent CPU and memory, the selection, the selected
app's log lines, and the lines to draw for a terminal of a given size.

Nothing here touches a terminal or systemd: pmsd.cli.monit feeds the model (the process list once a second,
CPU counters, log lines, keys) and draws what render() returns with curses; the tests drive both with no
terminal at all.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pmsd.errors import PmsdError
from pmsd.model.status import ProcessInfo, Status, exit_detail
from pmsd.render.formats import memory, uptime
from pmsd.render.table import text_width
from pmsd.systemd.states import ServiceState

HISTORY = 120  # samples kept per app, one a second: two minutes on a wide terminal
LOG_LINES_KEPT = 2000
SPARK = "▁▂▃▄▅▆▇█"
# Where the locale cannot show those (not UTF-8), the driver draws every line through this table: one column
# for one column, so the layout stays as it is.
ASCII = str.maketrans("▁▂▃▄▅▆▇█─·…↺↑↓", "_.-:=+*#-|~R^v")
CPU_SCALE_FLOOR = 1.0  # % : an idle app's noise stays on the bottom row instead of filling the sparkline
MEMORY_SPAN = 0.1  # the memory sparkline's scale is at least a tenth of the app's peak tall
RUNNING = frozenset({Status.ONLINE, Status.LAUNCHING, Status.STOPPING})
VERBS = {"r": "restart", "s": "stop", "l": "reload", "R": "reload"}
DOING = {"restart": "restarting", "stop": "stopping", "reload": "reloading"}
CONFIRMED = frozenset({"stop"})  # an app stopped by a stray key stays down: ask first


class Style(enum.Enum):
    NORMAL = "normal"
    TITLE = "title"
    HEADER = "header"
    DIM = "dim"
    GOOD = "good"
    BAD = "bad"
    WARN = "warn"
    ERROR = "error"


STATUS_STYLE = {Status.ONLINE: Style.GOOD, Status.STOPPED: Style.BAD, Status.ERRORED: Style.BAD}


@dataclass(frozen=True)
class Line:
    """One terminal row: styled pieces whose widths add up to the terminal's; `selected` rows are drawn
    highlighted across."""

    segments: tuple[tuple[str, Style], ...]
    selected: bool = False

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.segments)

    def ascii(self) -> Line:
        return Line(tuple((text.translate(ASCII), style) for text, style in self.segments), self.selected)


@dataclass(frozen=True)
class Action:
    verb: str  # "restart", "stop" or "reload": a pmsd.api.lifecycle function
    pm_id: int
    name: str

    @property
    def label(self) -> str:
        return f"{self.name} (id {self.pm_id})"


class Outcome(Protocol):
    """What pmsd.api.lifecycle returns per app."""

    @property
    def action(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def pm_id(self) -> int: ...


@dataclass
class History:
    """One app's last samples (None: not running then) and its last CPU counter reading."""

    cpu: deque[float | None] = field(default_factory=lambda: deque(maxlen=HISTORY))
    memory: deque[int | None] = field(default_factory=lambda: deque(maxlen=HISTORY))
    mark: tuple[float, int] | None = None  # (monotonic seconds, CPU ns of the unit's cgroup)
    invocation: str = ""

    def add(self, info: ProcessInfo, used_nsec: int | None, at: float) -> None:
        running = info.status in RUNNING
        if info.invocation_id != self.invocation:  # a new run: its counter starts again from zero
            self.mark, self.invocation = None, info.invocation_id
        cpu = None
        if running and used_nsec is not None and self.mark is not None and at > self.mark[0]:
            cpu = max(0.0, 100.0 * (used_nsec - self.mark[1]) / ((at - self.mark[0]) * 1e9))
        self.mark = (at, used_nsec) if running and used_nsec is not None else None
        self.cpu.append(cpu)
        self.memory.append(info.memory_bytes if running else None)


@dataclass(frozen=True)
class Layout:
    """Rows of each pane; details and logs are left out of a terminal too short for them."""

    list_rows: int
    details: bool
    log_rows: int


DETAIL_ROWS = 3
FIXED_ROWS = 3  # title, list header, key line
HELP = (
    "↑ ↓  j k    select an app            g G         the first, the last app",
    "r           restart it               s           stop it (asks first)",
    "l  R        reload it                PgUp PgDn   scroll its logs",
    "Home End    its oldest, newest logs  q  Ctrl-C   quit       ?  this help",
    "cpu: the whole unit cgroup over the last second (above 100% on several cores)",
    "mem: the unit's memory, MemoryCurrent: the app and its children",
    "sparklines: a sample a second; cpu from 0 to its peak, memory around its range",
)
KEYS_LINE = "↑↓ select  r restart  s stop  l reload  PgUp/PgDn logs  ? help  q quit"


def layout(height: int, count: int) -> Layout:
    """At 80x24 with a few apps: the list, three rows of details and a dozen log lines."""
    rows = height - FIXED_ROWS
    if rows < DETAIL_ROWS + 4:  # no room for details and at least a log line: the list alone
        return Layout(max(0, rows), False, 0)
    spare = rows - DETAIL_ROWS - 2  # the details' and the logs' title rows
    list_rows = min(max(count, 1), max(1, spare // 2))
    return Layout(list_rows, True, spare - list_rows)


def sparkline(values: Sequence[float | int | None], width: int, low: float, high: float, charset: str = SPARK
              ) -> str:
    """The last `width` values, one character each from the bottom (`low`) to the top (`high`) of the scale,
    right-aligned; None (not running) is a blank."""
    if width <= 0:
        return ""
    shown = list(values)[-width:]
    top, span = len(charset) - 1, high - low
    cells = [" " if value is None else charset[0] if span <= 0
             else charset[round((min(max(float(value), low), high) - low) / span * top)] for value in shown]
    return " " * (width - len(shown)) + "".join(cells)


def cpu_scale(values: Sequence[float | None]) -> tuple[float, float]:
    """From 0 to the window's peak: an idle app stays on the bottom row (CPU_SCALE_FLOOR)."""
    return 0.0, max([CPU_SCALE_FLOOR] + [value for value in values if value is not None])


def memory_scale(values: Sequence[int | None]) -> tuple[float, float]:
    """The window's range, so that a leak climbs the whole height; a range narrower than MEMORY_SPAN of the peak
    is drawn as a flat line halfway up (on a level, not between two, so that a few kB of noise stays flat)."""
    known = [value for value in values if value is not None]
    if not known:
        return 0.0, 1.0
    least, most = min(known), max(known)
    span = max(MEMORY_SPAN * most, 1.0)
    if most - least >= span:
        return least, most
    low = (least + most) / 2 - span * 4 / (len(SPARK) - 1)  # the middle on the fifth of eight levels
    return low, low + span


def fit(text: str, width: int, ellipsis: str = "") -> str:
    """`text` in exactly `width` columns: padded, or cut (ending with `ellipsis`, when given)."""
    if width <= 0:
        return ""
    if text_width(text) <= width:
        return text + " " * (width - text_width(text))
    room = width - text_width(ellipsis)
    out, used = [], 0
    for char in text:
        size = text_width(char)
        if used + size > room:
            break
        out.append(char)
        used += size
    return "".join(out) + ellipsis + " " * (room - used)


def printable(text: str) -> str:
    """A log message as one row: tabs as spaces, other control characters (escape sequences) shown as '?'."""
    text = text.replace("\t", "    ")
    return text if text.isprintable() else "".join(char if char.isprintable() else "?" for char in text)


class Monit:
    """The state of the screen: apps and their history, the selection, the selected app's logs, messages."""

    def __init__(self) -> None:
        self.infos: list[ProcessInfo] = []
        self.history: dict[int, History] = {}
        self.selected_id: int | None = None
        self.list_top = 0  # first app shown when the list is longer than its pane
        self.logs: deque[tuple[int, str, str]] = deque(maxlen=LOG_LINES_KEPT)  # (µs, stream, message)
        self.log_owner: int | None = None  # whose lines `logs` holds
        self.log_where = ""
        self.log_offset = 0  # lines scrolled back from the newest; 0 follows
        self.exit_reason = ""
        self.message: tuple[str, Style] | None = None  # the outcome of a key, until the next key
        self.problem: str | None = None  # why the last refresh failed, until one works
        self.pending: Action | None = None  # waiting for "y"
        self.show_help = False
        self.done = False

    # ------------------------------------------------------------------------------------ data
    def update(self, infos: Sequence[ProcessInfo], used_nsec: dict[int, int | None], at: float) -> None:
        """A new process list; `used_nsec`: each running app's CPU counter, read at monotonic time `at`."""
        index = self.selected_index
        self.infos = list(infos)
        for info in self.infos:
            self.history.setdefault(info.pm_id, History()).add(info, used_nsec.get(info.pm_id), at)
        for gone in set(self.history) - {info.pm_id for info in self.infos}:
            del self.history[gone]
        if self.selected_id not in self.history:  # the selected app was deleted: its neighbour
            self.selected_id = self.infos[min(index, len(self.infos) - 1)].pm_id if self.infos else None

    @property
    def selected_index(self) -> int:
        ids = [info.pm_id for info in self.infos]
        return ids.index(self.selected_id) if self.selected_id in ids else 0

    @property
    def selected(self) -> ProcessInfo | None:
        return self.infos[self.selected_index] if self.infos else None

    def cpu_now(self, pm_id: int) -> float | None:
        history = self.history.get(pm_id)
        return history.cpu[-1] if history is not None and history.cpu else None

    def set_logs(self, pm_id: int | None, lines: Sequence[tuple[int, str, str]], where: str) -> None:
        self.logs.clear()
        self.logs.extend(lines)
        self.log_owner, self.log_where, self.log_offset = pm_id, where, 0

    def add_logs(self, lines: Sequence[tuple[int, str, str]]) -> None:
        if self.log_offset:  # scrolled back: the lines shown stay where they are
            self.log_offset = min(self.log_offset + len(lines), max(0, LOG_LINES_KEPT - 1))
        self.logs.extend(lines)

    def say(self, text: str, style: Style = Style.NORMAL) -> None:
        self.message = (text, style)

    # ------------------------------------------------------------------------------------ keys
    def key(self, key: str, log_page: int) -> Action | None:
        """One key press ("up", "down", "pgup", "pgdn", "home", "end", "esc" or a character); an Action for
        the caller to carry out (then perform()), or None."""
        if self.pending is not None:
            action, self.pending = self.pending, None
            if key in ("y", "Y"):
                return action
            self.say(f"{action.verb} of {action.label} cancelled")
            return None
        self.message = None
        if key in ("q", "Q"):
            self.done = True
        elif key in ("?", "h"):
            self.show_help = not self.show_help
        elif key == "esc":
            self.show_help = False
        elif key in ("up", "k", "down", "j", "g", "G"):
            self._move(key)
        elif key in ("pgup", "pgdn", "home", "end"):
            self._scroll(key, max(1, log_page))
        elif key in VERBS and self.selected is not None:
            info = self.selected
            action = Action(VERBS[key], info.pm_id, info.name)
            if action.verb not in CONFIRMED:
                return action
            self.pending = action
            self.say(f"{action.verb} {action.label}? y: yes, any other key: no", Style.WARN)
        return None

    def _move(self, key: str) -> None:
        if not self.infos:
            return
        count, index = len(self.infos), self.selected_index
        moves = {"up": index - 1, "k": index - 1, "down": index + 1, "j": index + 1, "g": 0, "G": count - 1}
        self.selected_id = self.infos[moves[key] % count].pm_id  # up from the first wraps to the last

    def _scroll(self, key: str, page: int) -> None:
        most = max(0, len(self.logs) - page)
        step = {"pgup": page, "pgdn": -page, "home": most, "end": -most}[key]
        self.log_offset = min(most, max(0, self.log_offset + step))

    def perform(self, action: Action, call: Callable[[str, str], Sequence[Outcome]]) -> None:
        """Carry out `action` through call(verb, target) (pmsd.api.lifecycle's restart/stop/reload by id) and
        say how it went; a PmsdError is shown, never raised."""
        try:
            outcomes = call(action.verb, str(action.pm_id))
        except PmsdError as error:
            hint = f" ({error.hint})" if error.hint else ""
            self.say(f"{action.verb} {action.label} failed: {error.message}{hint}", Style.ERROR)
            return
        done = ", ".join(f"{outcome.name} (id {outcome.pm_id}) {outcome.action}" for outcome in outcomes)
        self.say(done or f"{action.verb} {action.label}: nothing to do", Style.GOOD)


def exit_reason(info: ProcessInfo, state: ServiceState | None) -> str:
    """How the app's last run ended, as systemd tells it (ExecMainCode/ExecMainStatus and Result)."""
    if state is not None and state.exec_main_code and info.status not in (Status.ONLINE, Status.LAUNCHING):
        return exit_detail(state)
    if info.status in RUNNING:
        return "- (running)"
    if info.exit_code is not None:
        return f"exit code {info.exit_code}"
    return "- (stopped: systemd has collected its unit)"


# ---------------------------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Columns:
    id: int
    name: int
    restarts: int
    spark: int  # 0: no sparklines, the terminal is too narrow

    @property
    def fixed(self) -> int:
        """Columns of everything but the sparklines: marker, id, name, status, ↺, cpu, mem and the spaces."""
        return self.id + self.name + self.restarts + 30


def _columns(infos: Sequence[ProcessInfo], width: int) -> _Columns:
    ident = max([2] + [len(str(info.pm_id)) for info in infos])
    restarts = max([3] + [len(str(info.restart_time)) for info in infos])
    name = min(max(8, width // 5), max([4] + [text_width(info.name) for info in infos]))
    columns = _Columns(ident, name, restarts, 0)
    spark = (width - columns.fixed - 1) // 2
    if spark < 4:  # too narrow for sparklines: the name takes what is left
        return _Columns(ident, max(4, min(name, width - columns.fixed + name)), restarts, 0)
    return _Columns(ident, name, restarts, min(spark, HISTORY))


def _title(model: Monit, width: int, now_ms: int) -> Line:
    online = sum(info.status == Status.ONLINE for info in model.infos)
    left = f" pmsd monit · {len(model.infos)} apps, {online} online"
    right = time.strftime(" %H:%M:%S ", time.localtime(now_ms / 1000))
    return _fitted([(fit(left, width - len(right)) + right, Style.TITLE)], width)


def _list_header(columns: _Columns, width: int) -> Line:
    spark = columns.spark
    text = (f" {'id'.rjust(columns.id)} {fit('name', columns.name)} {'status':9} {'↺'.rjust(columns.restarts)} "
            f"{'cpu':>6} " + (fit("cpu, last minutes", spark) + " " if spark else "") + f"{'mem':>8} "
            + fit("memory", spark))
    return _fitted([(text, Style.HEADER)], width)


def _row(model: Monit, info: ProcessInfo, columns: _Columns, width: int) -> Line:
    history = model.history.get(info.pm_id, History())
    cpu = model.cpu_now(info.pm_id)
    status = "waiting" if info.status == Status.WAITING_RESTART else str(info.status)
    selected = info.pm_id == model.selected_id
    segments: list[tuple[str, Style]] = [
        (f"{'>' if selected else ' '}{str(info.pm_id).rjust(columns.id)} {fit(info.name, columns.name, '…')} ",
         Style.NORMAL),
        (fit(status, 9), STATUS_STYLE.get(info.status, Style.WARN)),
        (f" {str(info.restart_time).rjust(columns.restarts)} {'-' if cpu is None else f'{cpu:.1f}%':>6} ",
         Style.NORMAL),
    ]
    if columns.spark:
        segments.append((sparkline(history.cpu, columns.spark, *cpu_scale(history.cpu)) + " ", Style.GOOD))
    segments.append((f"{memory(info.memory_bytes) if info.status in RUNNING else '-':>8} ", Style.NORMAL))
    if columns.spark:
        segments.append((sparkline(history.memory, columns.spark, *memory_scale(history.memory)), Style.WARN))
    return _fitted(segments, width, selected)


def _fitted(segments: Sequence[tuple[str, Style]], width: int, selected: bool = False) -> Line:
    """The segments cut (or padded) to exactly `width` columns."""
    out: list[tuple[str, Style]] = []
    room = width
    for text, style in segments:
        if room <= 0:
            break
        piece = text if text_width(text) <= room else fit(text, room)
        out.append((piece, style))
        room -= text_width(piece)
    if room > 0:
        out.append((" " * room, Style.NORMAL))
    return Line(tuple(out), selected)


def _rule(title: str, width: int, right: str = "") -> Line:
    left = f"─ {title} "
    tail = f" {right} ─" if right else ""
    fill = max(0, width - text_width(left) - text_width(tail))
    return _fitted([(left + "─" * fill + tail, Style.HEADER)], width)


def _details(model: Monit, info: ProcessInfo, width: int, now_ms: int) -> list[Line]:
    spec = info.record.spec
    first = " · ".join((f"pid {info.pid or '-'}", f"uptime {uptime(info.uptime_since_ms, now_ms)}",
                        f"restarts {info.restart_time} (unstable {info.unstable_restarts})",
                        f"{spec.exec_mode} mode", f"namespace {spec.namespace}"))
    limits = " · ".join((
        "max_memory_restart " + (memory(spec.max_memory_restart) if spec.max_memory_restart else "-"),
        "memory_max " + (memory(spec.memory_max) if spec.memory_max else "-"),
        f"max_restarts {spec.max_restarts} under {spec.min_uptime} ms",
    ))
    rows = (f" {first}", f" {limits}", f" last exit: {model.exit_reason or '…'}")
    return [_fitted([(row, Style.NORMAL)], width) for row in rows]


def _log_lines(model: Monit, rows: int, width: int) -> list[Line]:
    end = len(model.logs) - model.log_offset
    shown = list(model.logs)[max(0, end - rows): max(0, end)] if rows > 0 else []
    out = []
    for usec, stream, message in shown:
        stamp = time.strftime("%H:%M:%S", time.localtime(usec / 1e6))
        style = Style.WARN if stream == "err" else Style.NORMAL
        out.append(_fitted([(f" {stamp} ", Style.DIM), (printable(message), style)], width))
    if not shown and rows > 0:
        out.append(_fitted([(" no lines yet", Style.DIM)], width))
    return out + [_fitted([], width)] * (rows - len(out))


def _panes(model: Monit, panes: Layout, width: int, now_ms: int) -> list[Line]:
    """The details and logs panes, or the help in their place."""
    rows = DETAIL_ROWS + 2 + panes.log_rows
    info = model.selected
    if model.show_help:
        out = [_rule("keys", width)] + [_fitted([(f" {text}", Style.NORMAL)], width) for text in HELP]
    elif info is None:
        out = [_rule("no apps", width),
               _fitted([(" `pmsd start app.js` adds one; it shows here within a second", Style.DIM)], width)]
    else:
        scrolled = f"{model.log_offset} lines back, End follows" if model.log_offset else "following"
        out = [_rule(f"{info.name} (id {info.pm_id})", width, info.unit), *_details(model, info, width, now_ms),
               _rule(f"logs: {model.log_where}" if model.log_where else "logs", width, scrolled),
               *_log_lines(model, panes.log_rows, width)]
    return (out + [_fitted([], width)] * rows)[:rows]


def _list(model: Monit, rows: int, width: int) -> list[Line]:
    """The apps that fit in `rows`, scrolled so that the selected one shows (model.list_top remembers where
    the list was scrolled to, so that moving within the shown rows does not scroll it)."""
    columns = _columns(model.infos, width)
    index = model.selected_index
    top = min(max(model.list_top, index - rows + 1), index, max(0, len(model.infos) - rows))
    model.list_top = max(0, top)
    shown = model.infos[model.list_top: model.list_top + rows]
    return [_row(model, info, columns, width) for info in shown] + [_fitted([], width)] * (rows - len(shown))


def render(model: Monit, width: int, height: int, now_ms: int) -> list[Line]:
    """The whole screen: `height` lines of `width` columns (on a tiny terminal, what fits, never an error)."""
    if width <= 0 or height <= 0:
        return []
    panes = layout(height, len(model.infos))
    lines = [_title(model, width, now_ms)]
    if height >= FIXED_ROWS:
        lines.append(_list_header(_columns(model.infos, width), width))
    lines += _list(model, panes.list_rows, width)
    if panes.details:
        lines += _panes(model, panes, width, now_ms)
    text, style = model.message or ((model.problem, Style.ERROR) if model.problem else (KEYS_LINE, Style.DIM))
    lines.append(_fitted([(f" {text}", style)], width))
    return lines[:height]
