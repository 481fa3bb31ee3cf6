"""`pmsd ls`: PM2's process table."""

from __future__ import annotations

import os
import pwd
import unicodedata
from collections.abc import Sequence

from pmsd.model.status import ProcessInfo, Status
from pmsd.render.formats import memory, uptime

COLUMNS = ("id", "name", "namespace", "mode", "pid", "uptime", "↺", "status", "cpu", "mem", "user")
_STATUS_COLOUR = {Status.ONLINE: "32", Status.STOPPED: "31", Status.ERRORED: "31", Status.STOPPING: "33",
                  Status.LAUNCHING: "34", Status.WAITING_RESTART: "33"}


def text_width(text: str) -> int:
    """Terminal columns the text takes: wide characters count 2, combining ones 0."""
    if text.isascii():  # nearly every cell: 22,000 of them for 1,000 apps
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
               for c in text)


def _user_of(info: ProcessInfo, default: str) -> str:
    return info.record.spec.user or default


def rows(infos: Sequence[ProcessInfo], now_ms: int) -> list[tuple[str, ...]]:
    try:
        me = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        me = str(os.getuid())
    return [(
        str(info.pm_id), info.name, info.record.spec.namespace, info.record.spec.exec_mode,
        str(info.pid) if info.pid else "0",
        uptime(info.uptime_since_ms, now_ms), str(info.restart_time), str(info.status),
        f"{info.cpu_percent:g}%", memory(info.memory_bytes), _user_of(info, me),
    ) for info in infos]


def _widths(row: Sequence[str]) -> list[int]:
    """text_width of each cell; a row all in ASCII (nearly every one) measured in one go."""
    return [len(cell) for cell in row] if "".join(row).isascii() else [text_width(cell) for cell in row]


def render(infos: Sequence[ProcessInfo], now_ms: int, colour: bool) -> str:
    body = rows(infos, now_ms)
    sizes = [_widths(row) for row in body]
    header_sizes = _widths(COLUMNS)
    widths = [max(column) for column in zip(header_sizes, *sizes, strict=True)]

    def line(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    def cells(values: Sequence[str], value_sizes: Sequence[int], styles: Sequence[str | None]) -> str:
        out = []
        for value, size, width, style in zip(values, value_sizes, widths, styles, strict=True):
            padded = value + " " * (width - size)
            out.append(f" \x1b[{style}m{padded}\x1b[0m " if colour and style else f" {padded} ")
        return "│" + "│".join(out) + "│"

    header_style = ["1;36"] * len(COLUMNS)
    lines = [line("┌", "┬", "┐"), cells(COLUMNS, header_sizes, header_style), line("├", "┼", "┤")]
    for info, row, row_sizes in zip(infos, body, sizes, strict=True):
        styles: list[str | None] = [None] * len(COLUMNS)
        styles[0], styles[1] = "1", "1"
        styles[7] = _STATUS_COLOUR.get(info.status)
        lines.append(cells(row, row_sizes, styles))
    lines.append(line("└", "┴", "┘"))
    return "\n".join(lines) + "\n"
