"""TreeWatcher against the real inotify, in tmp_path; is_ignored as a pure function."""

from __future__ import annotations

import errno
import os
import select
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pmsd.linux.inotify
from pmsd.definition.watch_ext import ignore_all_but
from pmsd.linux.inotify import DEFAULT_IGNORE, TreeWatcher, WatchError, effective_ignore, is_ignored

TIMEOUT = 10.0  # generous: events arrive in milliseconds, a loaded CI machine is slow


def wait_for(watcher: TreeWatcher, *expected: Path, timeout: float = TIMEOUT) -> set[str]:
    """Everything reported until all of `expected` has been (select on the fd with a deadline, no sleeps)."""
    want = {str(p) for p in expected}
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while not want <= seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"not reported within {timeout} s: {sorted(want - seen)}; reported: {sorted(seen)}")
        ready, _, _ = select.select([watcher], [], [], remaining)
        if ready:
            seen.update(watcher.read_changes())
    return seen


def settle(watcher: TreeWatcher, root: Path) -> set[str]:
    """Everything reported up to a sentinel file written now.

    inotify queues events in order, so once the sentinel has been read, everything that was going to be
    reported for earlier changes has been.
    """
    sentinel = root / "sentinel.txt"
    sentinel.write_text(str(time.monotonic()))
    return wait_for(watcher, sentinel)


def kernel_watches(watcher: TreeWatcher) -> int:
    """How many watches the kernel holds for the watcher's inotify descriptor."""
    info = Path(f"/proc/self/fdinfo/{watcher.fileno()}").read_text()
    return sum(line.startswith("inotify wd:") for line in info.splitlines())


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "app"
    directory.mkdir()
    (directory / "app.js").write_text("v1\n")
    return directory


@pytest.fixture
def watcher(root: Path) -> Iterator[TreeWatcher]:
    with TreeWatcher([str(root)]) as w:
        yield w


# --- what is reported ---------------------------------------------------------------------------------

def test_modified_file_is_reported(root: Path, watcher: TreeWatcher) -> None:
    assert watcher.read_changes() == []  # nothing pending: returns at once
    (root / "app.js").write_text("v2\n")
    assert wait_for(watcher, root / "app.js") == {str(root / "app.js")}


def test_created_deleted_and_renamed_files_are_reported(root: Path, watcher: TreeWatcher) -> None:
    (root / "new.js").write_text("x")
    (root / "app.js").rename(root / "renamed.js")
    (root / "new.js").unlink()
    wait_for(watcher, root / "new.js", root / "app.js", root / "renamed.js")


def test_file_held_open_is_reported_when_closed(root: Path, watcher: TreeWatcher) -> None:
    # IN_CLOSE_WRITE, not IN_MODIFY: a writer still at work does not trigger anything yet.
    with (root / "app.js").open("a") as f:
        f.write("more\n")
        f.flush()
        assert str(root / "app.js") not in settle(watcher, root)
    wait_for(watcher, root / "app.js")


def test_chmod_is_not_a_change(root: Path, watcher: TreeWatcher) -> None:
    os.chmod(root / "app.js", 0o600)
    assert str(root / "app.js") not in settle(watcher, root)


def test_new_subdirectory_and_a_file_in_it(root: Path, watcher: TreeWatcher) -> None:
    (root / "lib").mkdir()
    wait_for(watcher, root / "lib")
    assert str(root / "lib") in watcher.watched_dirs
    (root / "lib" / "util.js").write_text("x")
    wait_for(watcher, root / "lib" / "util.js")


def test_files_in_a_tree_created_at_once_are_reported(root: Path, watcher: TreeWatcher) -> None:
    # Written before the watcher could add watches on the new directories: found by listing them.
    deep = root / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "x.js").write_text("x")
    wait_for(watcher, root / "a", root / "a" / "b", deep, deep / "x.js")
    (deep / "y.js").write_text("y")
    wait_for(watcher, deep / "y.js")


def test_directory_moved_in_is_reported_with_its_content_and_watched(
        tmp_path: Path, root: Path, watcher: TreeWatcher) -> None:
    outside = tmp_path / "pkg"
    (outside / "sub").mkdir(parents=True)
    (outside / "index.js").write_text("x")
    (outside / "sub" / "deep.js").write_text("x")
    outside.rename(root / "pkg")
    wait_for(watcher, root / "pkg", root / "pkg" / "index.js", root / "pkg" / "sub" / "deep.js")
    (root / "pkg" / "sub" / "later.js").write_text("x")
    wait_for(watcher, root / "pkg" / "sub" / "later.js")


def test_directory_renamed_within_the_tree_is_followed_at_its_new_path(root: Path) -> None:
    (root / "old" / "deep").mkdir(parents=True)
    with TreeWatcher([str(root)]) as w:
        (root / "old").rename(root / "new")
        wait_for(w, root / "old", root / "new", root / "new" / "deep")
        assert w.watched_dirs == [str(root), str(root / "new"), str(root / "new" / "deep")]
        (root / "new" / "deep" / "x.js").write_text("x")
        seen = wait_for(w, root / "new" / "deep" / "x.js")
        assert str(root / "old" / "deep" / "x.js") not in seen


def test_deleted_directory_loses_its_watches(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    with TreeWatcher([str(root)]) as w:
        assert w.watched_dirs == sorted([str(root), str(root / "sub"), str(root / "sub" / "deeper")])
        before = kernel_watches(w)
        shutil.rmtree(root / "sub")
        wait_for(w, root / "sub", root / "sub" / "deeper")
        settle(w, root)
        assert w.watched_dirs == [str(root)]
        assert kernel_watches(w) == before - 2


def test_directory_moved_out_is_no_longer_watched(tmp_path: Path, root: Path) -> None:
    (root / "sub").mkdir()
    with TreeWatcher([str(root)]) as w:
        before = kernel_watches(w)
        (root / "sub").rename(tmp_path / "gone")
        wait_for(w, root / "sub")
        assert w.watched_dirs == [str(root)]
        assert kernel_watches(w) == before - 1  # removed by the watcher: the directory still exists
        (tmp_path / "gone" / "x.js").write_text("x")
        seen = settle(w, root)
        assert not {str(root / "sub" / "x.js"), str(tmp_path / "gone" / "x.js")} & seen


def test_many_files(root: Path, watcher: TreeWatcher) -> None:
    expected = []
    for d in range(10):
        sub = root / f"dir{d}"
        sub.mkdir()
        for i in range(100):
            (sub / f"f{i}.js").write_text(str(i))
            expected.append(sub / f"f{i}.js")
    seen = wait_for(watcher, *expected)
    assert len(seen) == 10 + 1000


def test_a_busy_queue_is_read_in_bounded_slices(
        root: Path, watcher: TreeWatcher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pmsd.linux.inotify, "_READ_SIZE", 512)
    monkeypatch.setattr(pmsd.linux.inotify, "_MAX_READS", 1)
    files = [root / f"file{i}.js" for i in range(50)]
    for f in files:
        f.write_text("x")
    select.select([watcher], [], [], TIMEOUT)
    first = watcher.read_changes()
    assert 0 < len(first) < len(files)
    assert select.select([watcher], [], [], 0)[0]  # the rest is still there, and the loop will be told
    wait_for(watcher, *(f for f in files if str(f) not in first))


def test_queue_overflow_reports_the_roots_and_keeps_watching(root: Path, watcher: TreeWatcher) -> None:
    queue = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if queue > 100_000:
        pytest.skip(f"fs.inotify.max_queued_events is {queue}: too many files to write")
    paths = [str(root / "a.js"), str(root / "b.js")]
    for path in paths:
        Path(path).touch()
    for i in range(queue + 100):  # one IN_CLOSE_WRITE each; alternating, so the kernel cannot merge them
        os.close(os.open(paths[i % 2], os.O_WRONLY))
    wait_for(watcher, root)
    (root / "after.js").write_text("x")
    wait_for(watcher, root / "after.js")


# --- ignore -------------------------------------------------------------------------------------------

def test_ignored_paths_are_not_reported_nor_watched(root: Path) -> None:
    (root / "node_modules" / "pkg").mkdir(parents=True)
    (root / "build").mkdir()
    ignore = ["*.log", r"\.tmp$", "node_modules", "build/*.txt", "**/cache/**"]
    with TreeWatcher([str(root)], ignore) as w:
        assert w.watched_dirs == [str(root), str(root / "build")]
        ignored = [root / "out.log", root / "build" / "out.log", root / "x.tmp", root / "build" / "notes.txt",
                   root / "node_modules" / "pkg" / "index.js", root / "sub" / "node_modules" / "dep.js",
                   root / "sub" / "cache" / "entry.js", root / "cache"]
        (root / "sub" / "node_modules").mkdir(parents=True)
        (root / "sub" / "cache").mkdir()
        for path in ignored[:-1]:
            path.write_text("x")
        (root / "cache").mkdir()
        (root / "build" / "main.js").write_text("x")  # build/ itself is not ignored
        seen = settle(w, root)
        assert str(root / "build" / "main.js") in seen
        assert str(root / "sub") in seen
        assert not {str(p) for p in ignored} & seen
        assert w.watched_dirs == [str(root), str(root / "build"), str(root / "sub")]


def test_pm2_default_ignore(root: Path) -> None:
    (root / ".git").mkdir()
    with TreeWatcher([str(root)], effective_ignore(None)) as w:
        assert w.watched_dirs == [str(root)]
        (root / ".git" / "HEAD").write_text("ref")
        (root / ".env").write_text("A=1")
        (root / "node_modules").mkdir()
        (root / "app.js").write_text("v2")
        seen = settle(w, root)
        assert str(root / "app.js") in seen
        assert not {str(root / ".git" / "HEAD"), str(root / ".env"), str(root / "node_modules")} & seen


def test_editor_temporary_files_are_ignored(root: Path, watcher: TreeWatcher) -> None:
    (root / ".app.js.swp").write_text("x")
    (root / "app.js~").write_text("x")
    seen = settle(watcher, root)
    assert not {str(root / ".app.js.swp"), str(root / "app.js~")} & seen


def test_patterns_relative_to_the_app_cwd(root: Path) -> None:
    # PM2's own example: watch ["server", "client"], ignore_watch ["client/img", ...], both cwd-relative.
    client = root / "client"
    (client / "img").mkdir(parents=True)
    with TreeWatcher([str(client)], ["client/img"], cwd=str(root)) as w:
        assert w.watched_dirs == [str(client)]
        (client / "img" / "logo.png").write_text("x")
        (client / "ui.js").write_text("x")
        seen = settle(w, client)
        assert str(client / "ui.js") in seen
        assert str(client / "img" / "logo.png") not in seen


@pytest.mark.parametrize(("relpath", "patterns", "expected"), [
    ("node_modules", ["node_modules"], True),
    ("a/node_modules/b/c.js", ["node_modules"], True),
    ("a/node_modules_old/c.js", ["node_modules"], False),
    ("a/node_modules_old/c.js", DEFAULT_IGNORE, True),  # PM2's default regex matches a substring
    ("src/.git/HEAD", DEFAULT_IGNORE, True),
    (".env", DEFAULT_IGNORE, True),
    ("src/app.js", DEFAULT_IGNORE, False),
    ("x.log", ["*.log"], True),
    ("a/b/x.log", ["*.log"], True),
    ("a/b/x.logs", ["*.log"], False),
    ("logs/a.txt", ["logs/*.txt"], True),
    ("logs/sub/a.txt", ["logs/*.txt"], False),
    ("src/logs/a.txt", ["logs/*.txt"], False),
    ("tmp", ["**/tmp/**"], True),
    ("a/b/tmp/c/d", ["**/tmp/**"], True),
    ("a/tmpfile", ["**/tmp/**"], False),
    ("src/gen/x.map", ["src/**/*.map"], True),
    ("src/x.map", ["src/**/*.map"], True),
    ("a/b.ts", ["*.{js,ts}"], True),
    ("a/b.css", ["*.{js,ts}"], False),
    ("dist/app.js", ["/dist"], True),
    ("src/dist/app.js", ["/dist"], False),
    ("src/logs/x", ["logs/"], True),
    ("./a.log", ["*.log"], True),
    ("repo/.git/config", [r"\.git"], True),  # regex, PM2's documented example
    ("a/b.tmp", [r"\.tmp$"], True),
    ("a/b.tmp.js", [r"\.tmp$"], False),
    ("build/x", ["^build"], True),
    ("src/build", ["^build"], True),  # a regex is tried on the basename too
    ("src/x", ["^build"], False),
    ("a/b", ["x|b$"], True),
    ("ab(", ["ab("], True),  # not a valid regex: read as a glob
    ("a/b", [], False),
    ("", ["**"], False),  # the root itself is never ignored
])
def test_is_ignored(relpath: str, patterns: list[str], expected: bool) -> None:
    assert is_ignored(relpath, patterns) is expected


@pytest.mark.parametrize(("ignore_watch", "expected"), [
    (None, DEFAULT_IGNORE),
    ("", DEFAULT_IGNORE),
    ([], ()),  # an empty list is truthy in JavaScript: PM2 then ignores nothing
    ("*.log", ("*.log",)),
    (["dist", "*.log"], ("dist", "*.log")),
])
def test_effective_ignore(ignore_watch: str | list[str] | None, expected: tuple[str, ...]) -> None:
    assert effective_ignore(ignore_watch) == expected


# --- roots --------------------------------------------------------------------------------------------

def test_single_file_root(root: Path) -> None:
    app = root / "app.js"
    with TreeWatcher([str(app)]) as w:
        assert w.watched_dirs == []
        (root / "other.js").write_text("x")
        app.write_text("v2")
        assert str(root / "other.js") not in wait_for(w, app)
        # An editor's atomic save replaces the inode; the file is still followed afterwards.
        (root / ".app.js.tmp").write_text("v3")
        os.replace(root / ".app.js.tmp", app)
        wait_for(w, app)
        app.write_text("v4")
        wait_for(w, app)
        app.unlink()
        wait_for(w, app)
        app.write_text("v5")
        wait_for(w, app)


def test_root_directory_deleted_and_recreated(root: Path, watcher: TreeWatcher) -> None:
    shutil.rmtree(root)
    wait_for(watcher, root)
    assert watcher.watched_dirs == []
    (root / "lib").mkdir(parents=True)
    wait_for(watcher, root)
    (root / "lib" / "x.js").write_text("x")
    wait_for(watcher, root / "lib" / "x.js")
    assert watcher.watched_dirs == [str(root), str(root / "lib")]


def test_symlinks_are_not_followed(tmp_path: Path, root: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "loop").symlink_to(root)
    (root / "ext").symlink_to(elsewhere)
    with TreeWatcher([str(root)]) as w:
        assert w.watched_dirs == [str(root)]
        (elsewhere / "x.js").write_text("x")
        seen = settle(w, root)
        assert not {str(elsewhere / "x.js"), str(root / "ext" / "x.js")} & seen
        (root / "link2").symlink_to(elsewhere)
        wait_for(w, root / "link2")  # the link is an entry like any other
        assert w.watched_dirs == [str(root)]


def test_overlapping_roots_watch_each_directory_once(root: Path) -> None:
    (root / "src").mkdir()
    with TreeWatcher([str(root), str(root / "src"), str(root)]) as w:
        assert w.roots == [str(root), str(root / "src")]
        assert w.watched_dirs == [str(root), str(root / "src")]
        (root / "src" / "x.js").write_text("x")
        wait_for(w, root / "src" / "x.js")


def test_missing_root_is_an_error(tmp_path: Path) -> None:
    fds = open_fds()
    missing = tmp_path / "nope"
    with pytest.raises(WatchError) as info:
        TreeWatcher([str(tmp_path), str(missing)])
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(missing)
    assert str(missing) in str(info.value)
    assert open_fds() == fds  # the inotify descriptor was closed


def _no_watches_left(fd: int, path: str, mask: int) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def test_watch_limit_at_start(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pmsd.linux.inotify, "_inotify_add_watch", _no_watches_left)
    with pytest.raises(WatchError) as info:
        TreeWatcher([str(root)])
    assert info.value.errno == errno.ENOSPC
    assert "fs.inotify.max_user_watches" in str(info.value)


def test_watch_limit_on_a_new_directory(root: Path, watcher: TreeWatcher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pmsd.linux.inotify, "_inotify_add_watch", _no_watches_left)
    (root / "lib").mkdir()
    select.select([watcher], [], [], TIMEOUT)
    with pytest.raises(WatchError) as info:
        watcher.read_changes()
    assert "fs.inotify.max_user_watches" in str(info.value)
    assert info.value.filename == str(root / "lib")
    assert info.value.changes == [str(root / "lib")]  # what happened is not lost


def test_close(root: Path) -> None:
    fds = open_fds()
    w = TreeWatcher([str(root)])
    assert open_fds() != fds
    w.close()
    w.close()
    assert open_fds() == fds
    with pytest.raises(ValueError, match="closed"):
        w.fileno()


# --- PM2's --ext ----------------------------------------------------------------------------------------

def test_ext_ignores_the_files_with_other_extensions_that_exist_at_start(root: Path) -> None:
    (root / "notes.txt").write_text("x")
    (root / "lib").mkdir()
    (root / "lib" / "util.json").write_text("{}")
    (root / "lib" / "util.md").write_text("x")
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "readme.txt").write_text("x")
    ignored = ignore_all_but(str(root), "js,.json")
    assert ignored == [str(root / "notes.txt"), str(root / "lib" / "util.md")]
    with TreeWatcher([str(root)], effective_ignore(ignored)) as w:
        (root / "notes.txt").write_text("y")
        (root / "lib" / "util.md").write_text("y")
        (root / "lib" / "util.json").write_text("[]")
        seen = settle(w, root)
        assert str(root / "lib" / "util.json") in seen
        assert not {str(root / "notes.txt"), str(root / "lib" / "util.md")} & seen


@pytest.mark.parametrize("extensions", ["", ",", " . "])
def test_ext_needs_an_extension(root: Path, extensions: str) -> None:
    with pytest.raises(ValueError, match="expected file extensions"):
        ignore_all_but(str(root), extensions)
