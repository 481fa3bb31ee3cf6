"""Issue 19: pmsd's state directory fills up while pmsd writes one of its files.

Every writer of pmsd.state runs on a small tmpfs filled to a chosen number of free pages and free inodes, so
that the failure comes at different points (the backup's hard link, the temporary file, its write), and again
on an ordinary directory with each system call of pmsd.state.atomic failing in turn (fsync and rename, which
never fail on a tmpfs). After every failure: the previous file is byte-identical (or still absent), nothing new
is left behind (no `*.tmp`), and the caller gets a WriteError, a PmsdError naming the file and the directory to
free. Once space is freed, the same write succeeds and the state is the one a run without the fault leaves.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import pmsd.api.lifecycle
from pmsd.api.lifecycle import start
from pmsd.context import Context
from pmsd.errors import PmsdError
from pmsd.model.counters import AppCounters
from pmsd.model.record import AppRecord
from pmsd.state import atomic
from pmsd.state.atomic import WriteError, keep_as_backup, write_atomic
from pmsd.state.config import write_config
from pmsd.state.counters import save_counters
from pmsd.state.dump import DumpFile, Saved, SavedApp
from pmsd.state.envfiles import write_env_file
from pmsd.state.ports import write_found_ports
from pmsd.state.registry import Registry
from pmsd.state.unitfiles import write_units
from tests.unit.cli_harness import Env, run
from tests.unit.helpers import SYSTEM_PATH, make_record

pytestmark = [pytest.mark.reliability]

PAGE = 4096  # tmpfs allocates whole pages
SIZE_PAGES = 16
FILLER = ".filler"  # the files that fill the disk start with it; they are not pmsd's
BIG = 6000  # the write under test needs two pages: one free page fails it in the middle of its write
# (free pages, free inodes); None: inodes to spare
SIZES = [(pages, inodes) for pages in (0, 1, 2) for inodes in (0, 1, 2, None)]


# ------------------------------------------------------------------------------------------ the small disk


@dataclass
class SmallDisk:
    """A 64 KiB tmpfs that the test fills, leaving a chosen number of pages and inodes free."""

    root: Path

    def fill(self, free_pages: int = 0, free_inodes: int | None = None) -> None:
        filler = self.root / FILLER
        with open(filler, "wb", buffering=0) as handle:
            size = 0
            try:
                while True:
                    size += handle.write(b"\0" * PAGE)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
            handle.truncate(max(0, size - free_pages * PAGE))
        if free_inodes is not None:
            count = 0
            try:
                while True:
                    (self.root / f"{FILLER}-inode-{count}").touch()
                    count += 1
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
            for index in range(min(free_inodes, count)):
                (self.root / f"{FILLER}-inode-{index}").unlink()
        left = os.statvfs(self.root)
        assert left.f_bavail * left.f_frsize == free_pages * PAGE, "the filler should leave exactly that much"

    def free(self) -> None:
        for path in self.root.glob(f"{FILLER}*"):
            path.unlink()

    def wipe(self) -> None:
        for path in self.root.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def _mount_or_skip(directory: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the fault-injection tests of this file run without it)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_PAGES * PAGE},nr_inodes=64,mode=0700",
                             "pmsd-disk-full", str(directory)], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {result.stderr.strip()}")


@contextlib.contextmanager
def small_tmpfs() -> Iterator[SmallDisk]:
    """A SmallDisk mounted for the block, unmounted after it whatever happens (tests/e2e/test_disk_full.py
    uses it too); the test is skipped where it cannot be mounted."""
    # Not under tmp_path: pytest removes old tmp_path trees, and must never meet a mount point in them.
    directory = Path(tempfile.mkdtemp(prefix="pmsd-disk-full-"))
    try:
        _mount_or_skip(directory)
        try:
            yield SmallDisk(directory)
        finally:
            if subprocess.run(["umount", str(directory)], timeout=30).returncode != 0:
                # Busy (an app of the end-to-end test still holding a file): detach it now, freed once unused.
                subprocess.run(["umount", "--lazy", str(directory)], check=True, timeout=30)
    finally:
        directory.rmdir()


@pytest.fixture
def disk() -> Iterator[SmallDisk]:
    with small_tmpfs() as mounted:
        yield mounted


def _links_use_inodes(disk: SmallDisk) -> bool:
    """Whether this kernel's tmpfs counts a hard link against nr_inodes (recent ones do): the backup's link then
    fails on a disk out of inodes."""
    (disk.root / "probe").touch()
    disk.fill(free_pages=1, free_inodes=0)
    try:
        os.link(disk.root / "probe", disk.root / "probe-link")
    except OSError:
        return True
    finally:
        disk.free()
        disk.wipe()
    return False


# ------------------------------------------------------------------------------------------ the writers


def _pad(generation: int) -> str:
    return "x" * (BIG if generation == 2 else 100)


def _registry(root: Path, generation: int) -> None:
    with Registry(str(root)).transaction() as data:
        data.apps.append(make_record(pm_id=generation, name=f"app{generation}", env={"PAD": _pad(generation)}))
        data.next_id = generation + 1


def _env_file(root: Path, generation: int) -> None:
    write_env_file(str(root / "env" / "0.env"), {"GENERATION": str(generation), "PAD": _pad(generation)})


def _counters(root: Path, generation: int) -> None:
    count = 50 if generation == 2 else 2
    save_counters(str(root), {pm_id: AppCounters(created_at=generation, restarts=pm_id) for pm_id in range(count)})


def _dump(root: Path, generation: int) -> None:
    record = make_record(pm_id=generation, name=f"app{generation}", env={"PAD": _pad(generation)})
    DumpFile(str(root)).write(Saved(generation, generation + 1, [SavedApp(record, True, {"K": "v"})], {}))


def _config(root: Path, generation: int) -> None:
    write_config(str(root), {"log_retain": generation, "pad": _pad(generation)})


def _ports(root: Path, generation: int) -> None:
    write_found_ports(str(root), "web", tuple(range(1000, 2200 if generation == 2 else 1000 + generation + 1)))


def _unit_files(root: Path, generation: int) -> None:
    # The runtime unit directory comes from XDG_RUNTIME_DIR (pmsd.systemd.paths.runtime_unit_dir).
    text = f"[Service]\n# generation {generation}\nEnvironment=PAD={_pad(generation)}\n"
    write_units(True, {"XDG_RUNTIME_DIR": str(root)}, {"pmsd-web@.service": text})


def _plain(root: Path, generation: int) -> None:
    write_atomic(str(root / "plain"), f"{generation}\n{_pad(generation)}\n")


def _plain_with_backup(root: Path, generation: int) -> None:
    keep_as_backup(str(root / "plain"), str(root / "plain.bak"))
    _plain(root, generation)


@dataclass(frozen=True)
class Writer:
    name: str
    write: Callable[[Path, int], None]  # generation 0 and 1 before the fault, 2 under it
    path: str  # the file written, relative to the state directory
    backup: str | None = None  # its backup: the version before, or (once linked) the file itself

    def __str__(self) -> str:
        return self.name


WRITERS = [
    Writer("registry transaction", _registry, "registry.json", "registry.json.bak"),
    Writer("env file", _env_file, "env/0.env"),
    Writer("counters", _counters, "god-counters.json"),
    Writer("pmsd save", _dump, "dump.json", "dump.json.bak"),
    Writer("pmsd set", _config, "config.json"),
    Writer("found ports", _ports, "ports/web.json"),
    Writer("unit files", _unit_files, "systemd/user/pmsd-web@.service"),
    Writer("write_atomic", _plain, "plain"),
    Writer("keep_as_backup", _plain_with_backup, "plain", "plain.bak"),
]


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root but the fillers: a file's bytes, None for a directory."""
    return {str(path.relative_to(root)): None if path.is_dir() else path.read_bytes()
            for path in sorted(root.rglob("*")) if not path.name.startswith(FILLER)}


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _reference(tmp_path: Path, writer: Writer) -> dict[str, bytes | None]:
    """What the three generations leave where nothing fails."""
    root = tmp_path / "reference"
    root.mkdir()
    for generation in range(3):
        writer.write(root, generation)
    return _snapshot(root)


def _check_failure(root: Path, writer: Writer, error: WriteError, before: dict[str, bytes | None]) -> str:
    """The properties after a failed write; where it failed (for the coverage checks)."""
    after = _snapshot(root)
    assert not [path for path in after if path.endswith(".tmp")], after.keys()
    if writer.backup is not None and after.get(writer.backup) != before.get(writer.backup):
        # keep_as_backup went through before the write failed: the backup is the file it would replace.
        assert after[writer.backup] == before[writer.path]
        after[writer.backup] = before[writer.backup]
    assert after == before, f"{writer}: the failed write changed {set(after.items()) ^ set(before.items())}"
    assert isinstance(error, PmsdError)
    assert error.message.startswith(f"cannot write {root}/") and error.message.endswith(
        ": no space left on device"), error.message
    assert error.hint is not None and error.hint.startswith(f"free space in {root}"), error.hint
    cause = error.__cause__
    assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC
    if cause.filename2 is not None and str(cause.filename2).endswith(".tmp"):
        return "backup link"
    if cause.filename is not None and str(cause.filename).endswith(".tmp"):
        return "temporary file"
    return "write" if cause.filename is None else str(cause.filename)


# ------------------------------------------------------------------------------------------ a full tmpfs


@pytest.mark.parametrize("writer", WRITERS, ids=str)
def test_every_writer_survives_a_full_disk(disk: SmallDisk, tmp_path: Path, writer: Writer) -> None:
    reference = _reference(tmp_path, writer)
    # The sizes make each write fail in its write, and before it at its temporary file, or, for a write that
    # keeps a backup, at the backup's link where links take inodes (the old backup's inode, freed as the link
    # replaces it, then makes room for the temporary file).
    expected = {"write"} | ({"temporary file"} if writer.backup is None else
                            {"backup link"} if _links_use_inodes(disk) else set())
    points = set()
    for pages, inodes in SIZES:
        disk.wipe()
        writer.write(disk.root, 0)
        writer.write(disk.root, 1)
        before = _snapshot(disk.root)
        disk.fill(pages, inodes)
        descriptors = _descriptors()
        try:
            writer.write(disk.root, 2)
        except WriteError as error:
            points.add(_check_failure(disk.root, writer, error, before))
            assert _descriptors() == descriptors, "a failed write leaked a file descriptor"
            disk.free()
            writer.write(disk.root, 2)
        assert _snapshot(disk.root) == reference, f"{writer} with {pages} page(s), {inodes} inode(s) free"
        disk.free()
    assert expected <= points, points


def test_a_new_lock_file_or_state_directory_on_a_disk_out_of_inodes(disk: SmallDisk) -> None:
    disk.fill(free_pages=4, free_inodes=0)
    with pytest.raises(WriteError) as caught, Registry(str(disk.root)).transaction():
        pass
    assert caught.value.message == f"cannot write {disk.root}/registry.lock: no space left on device"
    with pytest.raises(PmsdError, match=r"cannot create pmsd's state directory .*: No space left on device"), \
            Registry(str(disk.root / "state")).transaction():
        pass
    assert _snapshot(disk.root) == {}


# ------------------------------------------------------------------------------------------ every system call failing


class FaultyOs:
    """The os module as pmsd.state.atomic sees it, its `fail_at`-th tracked call failing with ENOSPC. fsync and
    rename never fail on a tmpfs; on ext4, XFS or NFS they can (delayed allocation, write-back)."""

    TRACKED = ("makedirs", "open", "fsync", "replace", "link")

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.calls: list[str] = []
        self.directory_fds: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name not in self.TRACKED:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            label = name
            if (name == "open" and args[1] & os.O_DIRECTORY) or (name == "fsync" and args[0] in self.directory_fds):
                label = f"{name} directory"
            self.calls.append(label)
            if len(self.calls) - 1 == self.fail_at:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), args[0])
            result = real(*args, **kwargs)
            if label == "open directory":
                self.directory_fds.add(result)
            return result

        return call


@pytest.mark.parametrize("writer", WRITERS, ids=str)
def test_every_system_call_failing_in_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: Writer) -> None:
    reference = _reference(tmp_path, writer)
    root = tmp_path / "state"
    root.mkdir()
    writer.write(root, 0)
    writer.write(root, 1)
    recorder = FaultyOs()
    with monkeypatch.context() as patch:
        patch.setattr(atomic, "os", recorder)
        writer.write(root, 2)
    assert {"fsync", "replace", "fsync directory"} <= set(recorder.calls), recorder.calls
    for index, call in enumerate(recorder.calls):
        shutil.rmtree(root)
        root.mkdir()
        writer.write(root, 0)
        writer.write(root, 1)
        before, descriptors = _snapshot(root), _descriptors()
        with monkeypatch.context() as patch:
            patch.setattr(atomic, "os", FaultyOs(fail_at=index))
            if call.endswith(" directory"):
                # Past the rename: readers see the new file; only its durability across a crash is unknown.
                writer.write(root, 2)
                assert _snapshot(root) == reference
                continue
            with pytest.raises(WriteError) as caught:
                writer.write(root, 2)
        _check_failure(root, writer, caught.value, before)
        assert _descriptors() == descriptors, f"{writer}: {call} failed and leaked a file descriptor"
        writer.write(root, 2)
        assert _snapshot(root) == reference, f"{writer}: {call} failed, then wrote again"


def test_a_backup_copied_for_want_of_links_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hard links refused (EPERM: protected_hardlinks) and the copy that replaces the link failing too."""
    _plain(tmp_path, 0)
    _plain_with_backup(tmp_path, 1)
    before = _snapshot(tmp_path)

    class NoLinksFullDisk(FaultyOs):
        def __getattr__(self, name: str) -> Any:
            if name == "link":
                def refuse(*args: Any) -> None:
                    raise PermissionError(errno.EPERM, "Operation not permitted")

                return refuse
            return super().__getattr__(name)

    monkeypatch.setattr(atomic, "os", NoLinksFullDisk(fail_at=1))  # makedirs, then the copy's temporary file
    with pytest.raises(WriteError) as caught:
        _plain_with_backup(tmp_path, 2)
    assert caught.value.message == f"cannot write {tmp_path}/plain.bak: no space left on device"
    _check_failure(tmp_path, WRITERS[-1], caught.value, before)


@pytest.mark.parametrize(("number", "hint"), [
    (errno.ENOSPC, "free space in /state (`df -h /state`"),
    (errno.EDQUOT, "free space in /state: your disk quota is used up"),
    (errno.EROFS, "/state is on a read-only file system: remount it read-write"),
    (errno.EIO, "check the file system of /state"),
])
def test_the_hint_says_what_to_do(number: int, hint: str) -> None:
    error = WriteError("/state/registry.json", OSError(number, os.strerror(number)))
    assert error.message == f"cannot write /state/registry.json: {os.strerror(number)[0].lower()}" \
                            f"{os.strerror(number)[1:]}"
    assert error.hint is not None and error.hint.startswith(hint)
    assert isinstance(error, OSError) and error.errno == number  # god's counters keep catching it as OSError


# ------------------------------------------------------------------------------------------ readers


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_registry_on_a_full_disk_reads_its_backup(disk: SmallDisk, damage: str) -> None:
    """What a full disk can leave where rename is not atomic (or the file was written in place): an empty or a
    truncated registry. The read falls back to the backup even when no copy of the damage can be kept."""
    _registry(disk.root, 0)
    _registry(disk.root, 1)
    registry = disk.root / "registry.json"
    good = registry.read_bytes()
    registry.write_bytes(b"" if damage == "empty" else good[: len(good) // 2])
    before = _snapshot(disk.root)
    disk.fill(free_pages=0, free_inodes=0)

    warnings: list[str] = []
    data = Registry(str(disk.root), warnings).read()
    assert [app.name for app in data.apps] == ["app0"]  # the backup: the version before app1
    assert "no copy of it could be kept (No space left on device)" in warnings[0], warnings
    assert "registry.json.bak" in warnings[0]
    with pytest.raises(WriteError):
        _registry(disk.root, 2)
    assert _snapshot(disk.root) == before

    disk.free()
    warnings.clear()
    registry_after = Registry(str(disk.root), warnings)
    with registry_after.transaction() as data:
        data.apps.append(make_record(pm_id=5, name="app5"))
    assert "a copy is kept as" in warnings[0], warnings
    assert [app.name for app in Registry(str(disk.root)).read().apps] == ["app0", "app5"]
    assert (disk.root / "registry.json.bak").read_bytes() == before["registry.json.bak"]  # the good one stays


def test_a_damaged_save_on_a_full_disk_reads_its_backup(disk: SmallDisk) -> None:
    _dump(disk.root, 0)
    _dump(disk.root, 1)
    dump = disk.root / "dump.json"
    dump.write_bytes(dump.read_bytes()[:40])
    disk.fill(free_pages=0, free_inodes=0)
    warnings: list[str] = []
    saved = DumpFile(str(disk.root)).read(warnings)
    assert saved is not None and [app.record.name for app in saved.apps] == ["app0"]
    assert "using the save before it" in warnings[0]


# ------------------------------------------------------------------------------------------ callers


def test_apps_started_for_a_registry_that_cannot_be_written_are_undone(disk: SmallDisk) -> None:
    registry = Registry(str(disk.root))
    undone: list[str] = []
    with pytest.raises(WriteError, match=r"registry\.json: no space left on device"), registry.transaction() as data:
        data.apps.append(make_record(name="api"))
        registry.undo_unless_saved(lambda: undone.append("api"))
        disk.fill()
    assert undone == ["api"]

    disk.free()
    with registry.transaction() as data:
        data.apps.append(make_record(name="api"))
        registry.undo_unless_saved(lambda: undone.append("again"))
    assert undone == ["api"]  # saved: nothing undone
    assert [app.name for app in registry.read().apps] == ["api"]


def test_a_failing_undo_hides_neither_the_others_nor_the_error(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    undone: list[str] = []

    def refused() -> None:
        raise PmsdError("systemd refused the stop")

    with pytest.raises(RuntimeError, match="changed my mind"), registry.transaction():
        registry.undo_unless_saved(lambda: undone.append("first"))
        registry.undo_unless_saved(refused)
        raise RuntimeError("changed my mind")
    assert undone == ["first"]
    with pytest.raises(RuntimeError, match="outside a registry transaction"):
        registry.undo_unless_saved(lambda: None)


def test_pmsd_start_leaves_no_app_running_when_the_registry_cannot_be_written(
        disk: SmallDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The env file fits, the registry does not: the unit just started is stopped again (pmsd.api.lifecycle)."""
    script = tmp_path / "main.py"
    script.write_text("print('hi')\n")
    started: list[list[AppRecord]] = []
    undone: list[list[AppRecord]] = []

    def launch_then_fill(ctx: Context, records: list[AppRecord]) -> None:
        started.append(records)
        disk.fill()

    monkeypatch.setattr(pmsd.api.lifecycle, "launch_many", launch_then_fill)
    monkeypatch.setattr(pmsd.api.lifecycle, "undo_create", lambda ctx, records: undone.append(records))
    environ = {"PATH": SYSTEM_PATH, "PMSD_NO_GOD": "1", "XDG_RUNTIME_DIR": str(tmp_path)}
    ctx = Context(user=True, environ=environ, state_dir=str(disk.root))
    with pytest.raises(WriteError) as caught:
        start(ctx, str(script))
    assert caught.value.message == f"cannot write {disk.root}/registry.json: no space left on device"
    assert undone == started and len(started) == 1
    assert Registry(str(disk.root)).read().apps == []

    disk.free()
    monkeypatch.setattr(pmsd.api.lifecycle, "launch_many", lambda ctx, records: started.append(records))
    outcomes = start(Context(user=True, environ=environ, state_dir=str(disk.root)), str(script))
    assert [outcome.action for outcome in outcomes] == ["started"] and len(undone) == 1
    assert [app.name for app in Registry(str(disk.root)).read().apps] == ["main"]


def test_the_cli_says_what_to_free(env: Env, disk: SmallDisk, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PMSD_STATE_DIR", str(disk.root))
    disk.fill()
    result = run(capsys, "set", "log_retain", "5")
    assert result.status == 1
    assert result.err.splitlines() == [
        f"[pmsd][ERROR] cannot write {disk.root}/config.json: no space left on device",
        f"  hint: free space in {disk.root} (`df -h {disk.root}` shows what is left), then run the command again",
    ]
    disk.free()
    assert run(capsys, "set", "log_retain", "5").status == 0
    assert run(capsys, "get", "log_retain").out == "log_retain: 5\n"
