"""god's writer of app log files (pmsd.definition.logpipes): each app's pipes read on god's loop, every line
written to PM2's files for its stream (out_file, error_file, and log_file for both), raw, with PM2's timestamp
prefix (`time`, `log_date_format`) or as PM2's JSON record (`log_type: json`); files reopened on reloadLogs and
rotated by size or age (pm2-logrotate's naming, retention and gzip).

Lines are taken out of a pipe only once they are in the files (pmsd.linux.pipepeek): a kill -9 of god loses
none; a partial line stays in the pipe until its end arrives.
"""

from __future__ import annotations

import contextlib
import datetime
import fnmatch
import functools
import gzip
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pmsd.definition.config import config_value
from pmsd.definition.environment import runs_as_another_user
from pmsd.definition.logpipes import existing_pipes, log_sinks
from pmsd.definition.unitvalues import fnmatch_literal
from pmsd.god.loop import Loop
from pmsd.linux.asuser import Identity, identity_of, open_as
from pmsd.linux.pipepeek import PipePeek
from pmsd.model.record import AppRecord
from pmsd.model.spec import AppSpec
from pmsd.render.logs import PM2_DEFAULT_TIMESTAMP, format_time

PARTIAL_RECHECK_S = 0.02  # how soon a pipe holding only a partial line is looked at again
FILE_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True)
class Rotation:
    """When a file is rotated: above max_bytes, or older than interval_s; `retain` rotated files are kept."""

    max_bytes: int | None = None
    interval_s: int | None = None
    retain: int = 30
    compress: bool = False


@dataclass(frozen=True)
class LogTarget:
    """One app whose files god writes."""

    name: str
    pm_id: int
    pipes: tuple[tuple[str, str], ...]  # (stream, pipe path)
    sinks: tuple[tuple[str, tuple[str, ...]], ...]  # (stream, file paths)
    date_format: str | None = None
    as_json: bool = False
    rotation: Rotation = Rotation()
    owner: tuple[str, str | None] | None = None  # (user, group) the files belong to; None: god's own user


def target_of(record: AppRecord, user: bool, environ: Mapping[str, str], config: Mapping[str, Any] | None = None
              ) -> LogTarget | None:
    """The app's (or instance's) target if god writes its files: it has files and its pipes exist
    (pmsd.api.logpipes)."""
    spec = record.log_spec
    pipes = existing_pipes(spec, user, environ, record.instance)
    if not pipes:
        return None
    sinks = log_sinks(spec)
    date_format = spec.log_date_format or (PM2_DEFAULT_TIMESTAMP if spec.time else None)
    # System mode runs god as root: another user's files are created and opened as that user.
    owner = (spec.user, spec.group) if spec.user and runs_as_another_user(spec.user, not user, os.getuid()) else None
    return LogTarget(spec.name, record.pm_id, tuple(sorted(pipes.items())), tuple(sorted(sinks.items())),
                     date_format, spec.log_type == "json", rotation_of(spec, config or {}), owner)


def rotation_of(spec: AppSpec, config: Mapping[str, Any]) -> Rotation:
    """The app's own rotation settings, else the global ones (`pmsd set`, pmsd.definition.config)."""
    def pick(key: str) -> Any:
        own = getattr(spec, key)
        return own if own is not None else config_value(config, key)

    interval_ms = pick("log_rotate_interval")
    return Rotation(pick("log_max_size"), interval_ms // 1000 if interval_ms else None, pick("log_retain"),
                    pick("log_compress"))


def format_lines(lines: list[bytes], stream: str, target: LogTarget, now: float) -> bytes:
    """The lines (without their newlines) as they go into the files."""
    if target.as_json:
        stamp = datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return b"".join(json.dumps({"message": line.decode(errors="replace"), "timestamp": stamp, "type": stream,
                                    "process_id": target.pm_id, "app_name": target.name},
                                   ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for line in lines)
    if target.date_format:
        prefix = f"{format_time(int(now * 1e6), target.date_format)}: ".encode()
        return b"".join(prefix + line + b"\n" for line in lines)
    return b"".join(line + b"\n" for line in lines)


def rotated_name(path: str, when: float) -> str:
    """pm2-logrotate's name for a rotated file, app-out__2026-12-06_20-40-00.log, with microseconds added
    (-123456): rotations by size can come several to a second, and a rename must never replace an older one.
    The names sort in time order."""
    stem, ext = os.path.splitext(path)
    micros = int(when * 1e6)
    while True:
        seconds, fraction = divmod(micros, 1_000_000)
        name = f"{stem}__{time.strftime('%Y-%m-%d_%H-%M-%S', time.localtime(seconds))}-{fraction:06d}{ext}"
        if not os.path.lexists(name) and not os.path.lexists(name + ".gz"):
            return name
        micros += 1


def rotated_files(path: str) -> list[str]:
    """The rotated files of `path`, oldest first (their names sort by time)."""
    stem, ext = os.path.splitext(path)
    directory, base = os.path.split(stem)
    pattern = f"{fnmatch_literal(base)}__????-??-??_??-??-??-??????{fnmatch_literal(ext)}*"
    try:
        return sorted(os.path.join(directory, name) for name in os.listdir(directory or ".")
                      if fnmatch.fnmatchcase(name, pattern))
    except OSError:
        return []


@dataclass
class FileSink:
    """One log file, kept open for appending; rotated when its rotation says so."""

    path: str
    rotation: Rotation
    owner: Identity | None
    log: Callable[[str], None]
    fd: int = -1
    size: int = 0
    opened_at: float = 0.0

    def open(self) -> None:
        try:
            if self.owner is not None:
                self.fd = open_as(self.owner, self.path, FILE_FLAGS, 0o640, make_parents=True)
            else:
                os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
                self.fd = os.open(self.path, FILE_FLAGS, 0o640)
            self.size = os.fstat(self.fd).st_size
        except OSError as error:
            self.fd = -1
            self.log(f"cannot open log file {self.path}: {error.strerror}")
        self.opened_at = time.time()

    def write(self, data: bytes) -> None:
        if self.fd < 0:
            self.open()
            if self.fd < 0:
                return
        if self._due(len(data)):
            self.rotate()
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except OSError as error:
                self.log(f"cannot write log file {self.path}: {error.strerror}")
                return
            view = view[written:]
        self.size += len(data)

    def _due(self, incoming: int) -> bool:
        rotation = self.rotation
        if rotation.max_bytes is not None and self.size > 0 and self.size + incoming > rotation.max_bytes:
            with contextlib.suppress(OSError):
                self.size = os.fstat(self.fd).st_size  # `pmsd flush` may have emptied it meanwhile
            if self.size > 0 and self.size + incoming > rotation.max_bytes:
                return True
        return rotation.interval_s is not None and self.size > 0 and time.time() - self.opened_at >= rotation.interval_s

    def rotate(self) -> None:
        """Rename the file away and start a new one; compression and pruning run beside the loop."""
        self.close()
        now = time.time()
        target = rotated_name(self.path, now)
        try:
            os.rename(self.path, target)
        except OSError as error:
            self.log(f"cannot rotate log file {self.path}: {error.strerror}")
        else:
            threading.Thread(target=finish_rotation, args=(self.path, target, self.rotation, self.log),
                             daemon=True).start()
        self.open()

    def reopen(self) -> None:
        self.close()
        self.open()

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def finish_rotation(path: str, rotated: str, rotation: Rotation, log: Callable[[str], None]) -> None:
    """gzip the rotated file (when asked), then keep only the `retain` newest rotated files."""
    if rotation.compress:
        try:
            with open(rotated, "rb") as source, gzip.open(rotated + ".gz", "wb") as sink:
                shutil.copyfileobj(source, sink)
            os.unlink(rotated)
        except OSError as error:
            log(f"cannot compress {rotated}: {error.strerror}")
    for old in rotated_files(path)[:-rotation.retain or None]:
        with contextlib.suppress(OSError):
            os.unlink(old)


@dataclass
class PipeReader:
    target: LogTarget
    stream: str
    path: str
    fd: int
    peek: PipePeek = field(default_factory=PipePeek)
    waiting: bool = False  # a partial line is in the pipe: not watched, looked at again by a timer
    sinks: list[FileSink] = field(default_factory=list)


class LogWriter:
    """Every app's pipes on god's loop; sync() follows the registry."""

    def __init__(self, loop: Loop, log: Callable[[str], None]) -> None:
        self.loop = loop
        self.log = log
        self.readers: dict[str, PipeReader] = {}  # by pipe path
        self.sinks: dict[str, FileSink] = {}  # by file path: a combined file is shared by both streams
        self.targets: dict[int, LogTarget] = {}  # by pm_id: each instance of an app is a target

    def sync(self, targets: Iterable[LogTarget]) -> None:
        wanted = {target.pm_id: target for target in targets}
        for pm_id in [pm_id for pm_id, old in self.targets.items() if wanted.get(pm_id) != old]:
            self._drop(self.targets.pop(pm_id))
        for pm_id, target in wanted.items():
            if pm_id not in self.targets:
                self._add(target)
        self._close_unused_sinks()

    def reopen(self) -> None:
        """Reopen every file (reloadLogs): after a rotation tool moved it, or someone removed it."""
        for sink in self.sinks.values():
            sink.reopen()

    def close(self) -> None:
        self.sync(())

    def _add(self, target: LogTarget) -> None:
        owner = None
        if target.owner is not None:
            user, group = target.owner
            try:
                owner = identity_of(user, group)
            except KeyError:  # the user (or group) was removed since the app started: god must not fail with it
                self.log(f"app {target.name}: no user {user!r} or group {group!r} to write its log files as; "
                         "its lines wait in its pipes")
                return
        sinks = dict(target.sinks)
        for stream, path in target.pipes:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as error:
                self.log(f"app {target.name}: cannot open its log pipe {path}: {error.strerror}")
                continue
            reader = PipeReader(target, stream, path, fd)
            for file in sinks.get(stream, ()):
                sink = self.sinks.get(file)
                if sink is None:
                    sink = self.sinks[file] = FileSink(file, target.rotation, owner, self.log)
                reader.sinks.append(sink)
            self.readers[path] = reader
            self.loop.add_reader(fd, functools.partial(self._readable, reader))
        self.targets[target.pm_id] = target

    def _drop(self, target: LogTarget) -> None:
        for _, path in target.pipes:
            reader = self.readers.pop(path, None)
            if reader is None:
                continue
            self._readable(reader, final=True)  # what the pipe still holds belongs to this definition
            self._close_reader(reader)

    def _close_reader(self, reader: PipeReader) -> None:
        if reader.fd < 0:
            return
        if not reader.waiting:
            self.loop.remove_reader(reader.fd)
        reader.waiting = False
        os.close(reader.fd)
        reader.peek.close()
        reader.fd = -1

    def _close_unused_sinks(self) -> None:
        used = {id(sink) for reader in self.readers.values() for sink in reader.sinks}
        for path in [path for path, sink in self.sinks.items() if id(sink) not in used]:
            self.sinks.pop(path).close()

    def _readable(self, reader: PipeReader, final: bool = False) -> None:
        """Write the complete lines the pipe holds, then take them out of it (peek first: a kill -9 between
        the two repeats lines rather than losing them). A partial line stays in the pipe; the pipe is then
        looked at again shortly rather than on readability, which would fire until the line ends."""
        if reader.fd < 0:
            return
        for _ in range(16):  # at most 16 MiB at a time: other apps and god's own work get their turn
            try:
                data = reader.peek.peek(reader.fd)
            except OSError as error:
                self.log(f"app {reader.target.name}: reading {reader.path}: {error.strerror}")
                return
            if data is None:  # no writer left: systemd stopped the app's socket (the app was deleted)
                self._close_reader(reader)
                return
            cut = data.rfind(b"\n") + 1
            if final or (len(data) >= reader.peek.capacity and not cut):
                cut = len(data)  # the rest of the pipe, or a line longer than one peek
            if cut:
                lines = data[:cut].split(b"\n")
                if lines[-1] == b"":
                    lines.pop()
                formatted = format_lines(lines, reader.stream, reader.target, time.time())
                for sink in reader.sinks:
                    sink.write(formatted)
                reader.peek.take(reader.fd, cut)
            if cut < len(data) or not data:
                if cut < len(data) and not reader.waiting:  # a partial line: look again in a moment
                    reader.waiting = True
                    self.loop.remove_reader(reader.fd)
                    self.loop.call_later(PARTIAL_RECHECK_S, functools.partial(self._recheck, reader))
                return

    def _recheck(self, reader: PipeReader) -> None:
        if reader.fd < 0 or not reader.waiting:
            return
        reader.waiting = False
        self.loop.add_reader(reader.fd, functools.partial(self._readable, reader))
        self._readable(reader)
