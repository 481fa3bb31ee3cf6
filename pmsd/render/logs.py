"""How `pmsd logs` prints a line: PM2's `<id>|<name> | ` prefix, --raw, --json, timestamps, colours."""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass

from pmsd.api.logs import LogLine

_COLOURS = ("36", "32", "35", "33", "34", "31", "96", "92", "95", "93")
# moment.js tokens PM2 users put in log_date_format / --timestamp, longest first
_MOMENT = (("YYYY", "%Y"), ("YY", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("DD", "%d"),
           ("dddd", "%A"), ("ddd", "%a"), ("HH", "%H"), ("hh", "%I"), ("mm", "%M"), ("ss", "%S"),
           ("SSS", "%f"), ("A", "%p"), ("ZZ", "%z"), ("Z", "%:z"))
PM2_DEFAULT_TIMESTAMP = "YYYY-MM-DDTHH:mm:ss"


def strftime_from_moment(pattern: str) -> str:
    """A moment.js pattern as a strftime one; text in [brackets] is literal, as in moment."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern[index] == "[":
            end = pattern.find("]", index)
            end = len(pattern) if end < 0 else end
            out.append(pattern[index + 1 : end].replace("%", "%%"))
            index = end + 1
            continue
        for token, directive in _MOMENT:
            if pattern.startswith(token, index):
                out.append(directive)
                index += len(token)
                break
        else:
            out.append(pattern[index].replace("%", "%%"))
            index += 1
    return "".join(out)


def format_time(usec: int, moment_pattern: str) -> str:
    moment = datetime.datetime.fromtimestamp(usec / 1e6).astimezone()
    fmt = strftime_from_moment(moment_pattern)
    millis = f"{moment.microsecond // 1000:03d}"
    # strftime has no milliseconds and (before 3.12) no "+01:00" offsets: fill those in afterwards.
    text = moment.strftime(fmt.replace("%f", "@@MS@@").replace("%:z", "@@TZ@@"))
    offset = moment.strftime("%z")
    return text.replace("@@MS@@", millis).replace("@@TZ@@", f"{offset[:3]}:{offset[3:]}")


@dataclass
class LineFormat:
    raw: bool = False
    as_json: bool = False
    timestamp: str | None = None  # moment pattern, when timestamps are wanted
    colour: bool = False
    highlight: str | None = None

    def render(self, line: LogLine, app_timestamp: str | None = None, app_json: bool = False) -> str:
        if self.as_json or app_json:
            return json.dumps({
                "message": line.message, "timestamp": format_time(line.usec, "YYYY-MM-DDTHH:mm:ss.SSSZ"),
                "type": line.stream, "process_id": line.pm_id, "app_name": line.name,
            }, ensure_ascii=False)
        message = line.message
        if self.highlight:
            message = re.sub(re.escape(self.highlight), lambda m: f"\x1b[1;43m{m.group(0)}\x1b[0m", message)
        pattern = self.timestamp or app_timestamp
        stamp = f"{format_time(line.usec, pattern)}: " if pattern else ""
        if self.raw:
            return f"{stamp}{message}"
        prefix = f"{line.pm_id}|{line.name}"
        if self.colour:
            prefix = f"\x1b[{_COLOURS[line.pm_id % len(_COLOURS)]}m{prefix} |\x1b[0m"
        else:
            prefix += " |"
        return f"{prefix} {stamp}{message}"
