"""Checks of Prometheus' text exposition format (0.0.4), shared by the unit and end-to-end metrics tests.

Two readers, so neither's leniency hides a mistake: prometheus_client's own parser (what Python scrapers use),
and the format's rules as Prometheus' parser enforces them (prometheus/model/textparse/promparse.go) plus
promtool's naming lints that apply here (counters end in _total, every family has help).
"""

from __future__ import annotations

import http.client
import re
import socket

from prometheus_client.parser import text_string_to_metric_families

Series = tuple[str, frozenset[tuple[str, str]]]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
_SAMPLE = re.compile(rf"({_NAME})(?:\{{((?:{_LABEL},?)*)\}})? (\S+)")
_VALUE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|NaN|Inf)")


def parse_exposition(text: str) -> dict[Series, float]:
    """Every series of a scrape with its value; AssertionError naming the first rule the text breaks."""
    assert text == "" or text.endswith("\n"), "the last line must end with a line feed"
    helped: set[str] = set()
    typed: dict[str, str] = {}
    finished: set[str] = set()  # families whose samples are over: they may not come back
    current = ""
    series: dict[Series, float] = {}
    for number, line in enumerate(text.splitlines(), 1):
        where = f"line {number}: {line!r}"
        if line.startswith("# "):
            keyword, name, *rest = line[2:].split(" ", 2)
            if keyword == "HELP":
                assert name not in helped and name not in finished, f"{where}: a second HELP, or HELP after samples"
                helped.add(name)
            elif keyword == "TYPE":
                assert name not in typed and name not in finished, f"{where}: a second TYPE, or TYPE after samples"
                assert rest and rest[0] in ("counter", "gauge", "untyped", "summary", "histogram"), where
                typed[name] = rest[0]
            continue
        match = _SAMPLE.fullmatch(line)
        assert match is not None, f"{where}: not a sample"
        name, labels_text, value = match.group(1), match.group(2) or "", match.group(5)
        assert _VALUE.fullmatch(value), f"{where}: {value!r} is not a value"
        if name != current:
            assert name not in finished, f"{where}: the samples of {name} are not together"
            finished.add(current)
            current = name
        labels = re.findall(_LABEL, labels_text)
        keys = [key for key, _ in labels]
        assert len(keys) == len(set(keys)), f"{where}: a label twice"
        assert not any(key.startswith("__") for key in keys), f"{where}: labels starting __ are Prometheus' own"
        key = (name, frozenset((k, _unescape(v)) for k, v in labels))
        assert key not in series, f"{where}: the same series twice"
        series[key] = float(value)
        assert name in helped, f"{where}: {name} has no HELP"
        assert (typed.get(name) == "counter") == name.endswith("_total"), f"{where}: only counters end in _total"
    assert series == _client_series(text), "prometheus_client reads other series"
    return series


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _client_series(text: str) -> dict[Series, float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def values(series: dict[Series, float], name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The series of one metric, by label set."""
    return {labels: value for (metric, labels), value in series.items() if metric == name}


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (god's metrics.sock)."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock
