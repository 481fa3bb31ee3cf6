"""A scrape (pmsd.api.metrics) in Prometheus' text exposition format, version 0.0.4: what `pmsd metrics` prints
and god's HTTP listener serves.

Named in the spirit of node_exporter's systemd collector and systemd_exporter: base units in the name (_bytes,
_seconds), counters end in _total, a state is one series per possible value (1 for the current one, as
node_systemd_unit_state does), and a start time rather than an uptime (a timestamp stays true between scrapes;
the age is `time() - pmsd_app_start_time_seconds`). A figure pmsd cannot read is left out, not reported as 0.

Every app's series carry the labels name, id (PM2's pm_id), app_instance (the cluster instance, "" for a single
app), namespace and unit. Not "instance": Prometheus sets that label itself (the scraped target), and renames
an exposed one to exported_instance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from pmsd.api.metrics import Scrape
from pmsd.model.status import ProcessInfo, Status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Sequence[tuple[str, str]]
Value = int | float
Sample = tuple[str, Value]  # labels as written (key="value",...), and the value

# name, type, help, the app's value (None: unknown, left out)
_APP_FAMILIES: tuple[tuple[str, str, str, Callable[[ProcessInfo, Scrape], Value | None]], ...] = (
    ("pmsd_app_memory_bytes", "gauge",
     "Memory used by the app's processes: its unit's cgroup memory.current, else their resident memory.",
     lambda info, _scrape: info.memory_bytes or None),  # 0: not running, or nothing could be read
    ("pmsd_app_cpu_seconds_total", "counter",
     "CPU time used by the app's processes since its current run started (from 0 again at each restart).",
     lambda info, _scrape: info.cpu_seconds),
    ("pmsd_app_restarts_total", "counter",
     "Restarts of the app, as PM2 counts them: automatic, manual and god's.",
     lambda info, _scrape: info.restart_time),
    ("pmsd_app_unstable_restarts_total", "counter",
     "Restarts of the app after runs shorter than its min_uptime (PM2's unstable restarts).",
     lambda info, _scrape: info.unstable_restarts),
    ("pmsd_app_start_time_seconds", "gauge",
     "When the app's current run started, in seconds since the Unix epoch.",
     lambda info, _scrape: info.uptime_since_ms / 1000 if info.uptime_since_ms else None),
    ("pmsd_app_open_fds", "gauge",
     "File descriptors held by the app's processes, where /proc lets pmsd count them.",
     lambda info, scrape: scrape.open_fds.get(info.pm_id)),
)


def render_metrics(scrape: Scrape) -> str:
    lines: list[str] = []
    _family(lines, "pmsd_build_info", "gauge", "pmsd's version, as a label; the value is always 1.",
            [(_labels((("version", scrape.version),)), 1)])
    _family(lines, "pmsd_up", "gauge", "1 when pmsd could read its apps' state, 0 when it could not.",
            [("", int(scrape.up))])
    if scrape.god_up is not None:
        _family(lines, "pmsd_god_up", "gauge", "1 when pmsd's god (pmsd-god.service) answers, 0 when it does not.",
                [("", int(scrape.god_up))])
    if not scrape.up:
        return _text(lines)
    _family(lines, "pmsd_apps", "gauge", "Apps pmsd manages, each instance of a cluster app counted once.",
            [("", len(scrape.processes))])
    apps = [(info, _labels(app_labels(info))) for info in scrape.processes]  # each app's labels written once
    _family(lines, "pmsd_app_status", "gauge", "The app's status as pmsd ls shows it: 1 for the current one.",
            [(f'{labels},state="{status}"', int(info.status is status)) for info, labels in apps for status in Status])
    for name, kind, help_text, value_of in _APP_FAMILIES:
        _family(lines, name, kind, help_text,
                [(labels, value) for info, labels in apps if (value := value_of(info, scrape)) is not None])
    return _text(lines)


def app_labels(info: ProcessInfo) -> Labels:
    instance = info.record.instance
    return (("name", info.name), ("id", str(info.pm_id)), ("app_instance", "" if instance is None else str(instance)),
            ("namespace", info.record.spec.namespace), ("unit", info.unit))


def _family(lines: list[str], name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> None:
    """One metric family: its HELP and TYPE, then its series; nothing at all when it has none. A sample's labels
    come written (_labels), without their braces."""
    series = [f"{name}{{{labels}}} {_value(value)}" if labels else f"{name} {_value(value)}"
              for labels, value in samples]
    if series:
        lines += [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}", *series]


def _text(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)  # the format ends every line with \n, the last one too


def _labels(labels: Labels) -> str:
    return ",".join(f'{key}="{escape_label_value(value)}"' for key, value in labels)


def escape_label_value(value: str) -> str:
    """The format's three escapes in a label value: backslash, double quote, line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text escapes backslash and line feed (a double quote stays as it is)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value: Value) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)
