"""Where an app's lines are, and reading them: the last N, then following new ones.

Journal lines are found by unit (`_SYSTEMD_USER_UNIT=`/`_SYSTEMD_UNIT=` plus `_UID=`), never by text, and
only from the app's creation on (or its last `pmsd flush`), so a deleted and recreated app with the same
name does not inherit the old one's lines. Apps that set PM2's out_file/error_file/log_file write there
(systemd opens the files: StandardOutput=append:...), and their lines are read from the files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pmsd.model.record import AppRecord
from pmsd.systemd.journal import Journal

# journald's "Suppressed N messages from <cgroup>" (SD_MESSAGE_JOURNAL_DROPPED in sd-messages.h)
DROPPED_MESSAGE_ID = "a596d6fe7bfa4994828e72309e95d61e"


@dataclass(frozen=True)
class LogLine:
    pm_id: int
    name: str
    usec: int  # when journald received it (µs since the epoch); file lines: the file's mtime
    message: str
    stream: str  # "out", "err", or "out/err" when the journal cannot tell them apart


@dataclass(frozen=True)
class Source:
    """One place lines of one app are written to."""

    record: AppRecord
    stream: str
    journal_unit: str | None = None  # a journal source, by unit
    path: str | None = None  # a file source
    since_usec: int = 0


def sources_for(record: AppRecord) -> list[Source]:
    spec = record.log_spec
    since = max(record.created_at, record.flushed_at) * 1000
    files = [(path, stream) for path, stream in ((spec.out_file, "out"), (spec.error_file, "err"))
             if path]
    if spec.log_file and not files:
        files = [(spec.log_file, "out/err")]
    out: list[Source] = [Source(record, stream, path=path) for path, stream in files]
    covered = {stream for _, stream in files}
    if spec.disable_logs:
        return []
    if not ({"out", "err"} <= covered or "out/err" in covered):
        # Whatever is not written to a file goes to the journal, where stdout and stderr share one stream
        # unless one of them goes to a file.
        journal_stream = "out/err" if not covered else ("err" if "out" in covered else "out")
        out.append(Source(record, journal_stream, journal_unit=record.unit, since_usec=since))
    return out


def _match_unit(journal: Journal, unit: str, user: bool) -> None:
    if user:
        journal.match("_SYSTEMD_USER_UNIT", unit)
        journal.match("_UID", str(os.getuid()))  # another user may have a unit of the same name
    else:
        journal.match("_SYSTEMD_UNIT", unit)


def _journal_line(journal: Journal, source: Source) -> LogLine:
    message = (journal.get("MESSAGE") or b"").decode("utf-8", "replace")
    return LogLine(source.record.pm_id, source.record.name, journal.realtime_usec(), message, source.stream)


def last_lines(sources: Sequence[Source], count: int, user: bool, wanted: set[str]) -> list[LogLine]:
    """The last `count` lines of each source, merged in time order. Seeks from the tail: the cost does not
    grow with the size of the journal."""
    lines: list[LogLine] = []
    journal_sources = [s for s in sources if s.journal_unit and _wanted(s.stream, wanted)]
    if journal_sources and count > 0:
        with Journal() as journal:
            for source in journal_sources:
                journal.flush_matches()
                _match_unit(journal, source.journal_unit or "", user)
                journal.seek_tail()
                found: list[LogLine] = []
                while len(found) < count and journal.previous():
                    if journal.realtime_usec() < source.since_usec:
                        break
                    found.append(_journal_line(journal, source))
                lines.extend(reversed(found))
    for source in sources:
        if source.path and _wanted(source.stream, wanted):
            lines.extend(_file_tail(source, count))
    lines.sort(key=lambda line: line.usec)
    return lines


def _wanted(stream: str, wanted: set[str]) -> bool:
    # A merged journal stream ("out/err") is never shown for --out or --err alone: it holds both, and
    # pmsd must not present a stdout line as stderr (or the reverse).
    return not wanted or stream in wanted


def _file_tail(source: Source, count: int) -> list[LogLine]:
    path = source.path or ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            block = 65536
            data = b""
            position = end
            while position > 0 and data.count(b"\n") <= count:
                position = max(0, position - block)
                handle.seek(position)
                data = handle.read(end - position)
            mtime = int(os.fstat(handle.fileno()).st_mtime * 1e6)
    except FileNotFoundError:
        return []
    texts = data.decode("utf-8", "replace").splitlines()[-count:] if count > 0 else []
    return [LogLine(source.record.pm_id, source.record.name, mtime, text, source.stream) for text in texts]


def follow(sources: Sequence[Source], user: bool, wanted: set[str], poll_s: float = 0.05) -> Iterator[LogLine]:
    """New lines as they arrive, until the caller stops iterating. Positions are taken before returning
    the first line, so nothing written after `pmsd logs` started is missed.

    journald makes new entries readable at once (the files are shared memory) but wakes inotify readers
    only on a 250 ms timer (POST_CHANGE_TIMER_INTERVAL_USEC in journald-server.c), so sd_journal_wait()
    alone would add up to 250 ms: waking every poll_s and looking costs one cheap call and bounds the
    latency instead."""
    with Tail(sources, user, wanted) as tail:
        while True:
            lines = tail.read()
            yield from lines
            if not lines:
                tail.wait(poll_s)


class Tail:
    """The lines written to `sources` from now on, read without blocking: each read() returns those that
    arrived since the previous one. For an event loop (`pmsd monit`), fileno() becomes readable when the
    journal changes; files are looked at on every read()."""

    def __init__(self, sources: Sequence[Source], user: bool, wanted: set[str] | None = None) -> None:
        wanted = wanted or set()
        journal_sources = [s for s in sources if s.journal_unit and _wanted(s.stream, wanted)]
        self._user = user
        self._by_unit = {s.journal_unit: s for s in journal_sources}
        self._files = {s.path: s for s in sources if s.path and _wanted(s.stream, wanted)}
        self._positions = {path: _size(path or "") for path in self._files}
        self._journal = Journal() if journal_sources else None
        if self._journal is not None:
            for index, source in enumerate(journal_sources):
                if index:
                    self._journal.disjunction()
                _match_unit(self._journal, source.journal_unit or "", user)
            self._journal.seek_tail()
            self._journal.previous()  # position on the last existing entry; next() then yields only new ones

    def fileno(self) -> int | None:
        """The journal's change descriptor (pmsd.systemd.journal), None when every source is a file."""
        return self._journal.fileno() if self._journal is not None else None

    def read(self) -> list[LogLine]:
        lines: list[LogLine] = []
        if self._journal is not None:
            self._journal.process()
            while self._journal.next():
                unit = (self._journal.get("_SYSTEMD_USER_UNIT" if self._user else "_SYSTEMD_UNIT") or b"").decode()
                match = self._by_unit.get(unit)
                if match is not None:
                    lines.append(_journal_line(self._journal, match))
        for path, source in self._files.items():
            texts, self._positions[path] = _file_new_lines(path or "", self._positions[path])
            now_usec = int(time.time() * 1e6)
            lines += [LogLine(source.record.pm_id, source.record.name, now_usec, text, source.stream)
                      for text in texts]
        return lines

    def wait(self, timeout_s: float) -> None:
        """Until the journal changes or timeout_s passes (files cannot be waited for: it is a sleep)."""
        if self._journal is not None:
            self._journal.wait(int(timeout_s * 1e6))
        else:
            time.sleep(timeout_s)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def __enter__(self) -> Tail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _file_new_lines(path: str, position: int) -> tuple[list[str], int]:
    size = _size(path)
    if size < position:  # truncated (pmsd flush, logrotate copytruncate): start over
        position = 0
    if size == position:
        return [], position
    with open(path, "rb") as handle:
        handle.seek(position)
        data = handle.read(size - position)
    complete = data.rfind(b"\n") + 1  # hold back a partial last line until it is finished
    text = data[:complete].decode("utf-8", "replace")
    return text.splitlines(), position + complete


@dataclass(frozen=True)
class Suppression:
    usec: int
    dropped: int
    message: str


def suppressions(since_usec: int, user: bool) -> list[Suppression]:
    """journald's reports of lines it dropped from pmsd's units since `since_usec`.

    journald rate-limits per *system* unit: all units of a user manager share user@UID.service's budget, so
    a report about it concerns every app of that manager. journald writes the report only when the next
    message from that unit gets through after the rate-limit window (30 s by default)."""
    wanted = f"user@{os.getuid()}.service" if user else "/pmsd-"
    found: list[Suppression] = []
    with Journal() as journal:
        journal.match("MESSAGE_ID", DROPPED_MESSAGE_ID)
        journal.seek_realtime(since_usec)
        while journal.next():
            message = (journal.get("MESSAGE") or b"").decode("utf-8", "replace")
            if wanted not in message:
                continue
            dropped_raw = journal.get("N_DROPPED")
            dropped = int(dropped_raw) if dropped_raw and dropped_raw.isdigit() else _count_in(message)
            found.append(Suppression(journal.realtime_usec(), dropped, message))
    return found


def _count_in(message: str) -> int:
    words = message.split()
    return int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
