"""Recursive file watching over Linux inotify, for PM2's `watch` / `ignore_watch`.

A `TreeWatcher` holds one inotify descriptor with a watch on every directory under its roots. It is made
for a single-threaded `selectors` loop: register `fileno()` for reading, call `read_changes()` when it is
readable, and debounce (PM2's `watch_delay`) in the caller. libc is called through ctypes; nothing else
is needed.

What counts as a change, per inotify(7) event:

* IN_CLOSE_WRITE: a file opened for writing was closed. One event per write session, so an editor's save,
  `cp`, `git checkout` or `touch` each report a file once, and only once it is complete: restarting on
  IN_MODIFY would restart the app while a large file is still half-copied, and report it once per
  write(2). The price is that a file appended to by a long-lived writer that never closes it is not
  reported; that is almost always a log file, and restarting on it would make an app that logs under
  its own directory restart itself forever (the classic PM2 watch loop), so IN_MODIFY is not watched.
* IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO: entries appearing and disappearing, files (including
  symlinks, which are reported but never followed) and directories alike.
* IN_DELETE_SELF, IN_MOVE_SELF: a watched directory itself went away.
* IN_ATTRIB is not watched: chmod, chown or a bare timestamp change should not restart an app.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
import stat
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType

# PM2 passes `ignore_watch` to chokidar as `ignored`, and only when it is unset (or empty-string) does it
# use its own default, the regex /[\/\\]\.|node_modules/ (lib/Watcher.js: `ignored: pm2_env.ignore_watch
# || /[\/\\]\.|node_modules/`). That regex ignores every path with a component starting with "." (.git,
# .env, editor swap files) and every path containing "node_modules". A user list replaces the default
# rather than extending it, and an empty list (truthy in JavaScript) means "ignore nothing". The same
# rule in this module's pattern language (a pattern without "/" is tried on every path component), with
# one deliberate difference: chokidar tests the regex on the absolute path, so an app living under a
# dot-directory (~/.apps/x) has everything ignored; here paths are relative to the root (or the app's cwd)
# and nothing at or above a root is tested.
DEFAULT_IGNORE: tuple[str, ...] = ("*node_modules*", ".*")

# chokidar (PM2 depends on chokidar 3) also always ignores editors' temporary files, whatever `ignored`
# says, while its `atomic` option is on (the default without polling): vim swap files, "~" backups and
# Sublime Text's temporaries (its DOT_RE). The same set, as component globs.
EDITOR_TEMP_IGNORE: tuple[str, ...] = ("*~", "*.*.sw[px]", "*.subl*.tmp")

# <sys/inotify.h>
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# IN_EXCL_UNLINK: no events for files already unlinked but still open (a deleted temporary being written).
WATCH_MASK = (IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF
              | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

_EVENT = struct.Struct("iIII")  # struct inotify_event: int wd; uint32_t mask, cookie, len; char name[len]
_READ_SIZE = 64 * 1024  # whole events only; one needs at most 16 + NAME_MAX + 1 bytes
# Reads per read_changes(): a tree written to without pause must not hold the event loop. Whatever is left
# keeps the descriptor readable, so the loop comes back to it.
_MAX_READS = 64

# Characters that make an ignore entry a regular expression rather than a glob: none of them means
# anything to a glob, and file names seldom contain them. "." "*" "?" "[" "{" are read as glob syntax,
# so ".*" is a glob (dotfiles), not the regex "anything".
_REGEX_CHARS = frozenset("\\^$()|+")


class WatchError(OSError):
    """Watching could not be set up (or kept up); `filename` is the path concerned.

    When raised by `read_changes`, `changes` holds what had been collected before the failure, so the
    caller can still act on it.
    """

    def __init__(self, err: int, message: str, path: str, *, changes: Sequence[str] = ()) -> None:
        super().__init__(err, message, path)
        self.changes = list(changes)


def effective_ignore(ignore_watch: str | Sequence[str] | None) -> tuple[str, ...]:
    """The ignore patterns PM2 would use for an app's `ignore_watch` value (see DEFAULT_IGNORE)."""
    if ignore_watch is None or ignore_watch == "":
        return DEFAULT_IGNORE
    if isinstance(ignore_watch, str):
        return (ignore_watch,)
    return tuple(ignore_watch)


def is_ignored(relpath: str, patterns: Sequence[str]) -> bool:
    """Whether `relpath` ("/"-separated, relative to the watched root) is ignored by `patterns`.

    Each pattern is a regular expression if it contains one of \\ ^ $ ( ) | + and a glob otherwise:

    * a glob without "/" (`*.log`, `node_modules`, `.*`) is matched against every path component;
    * a glob with "/" (`logs/*.txt`, `**/tmp/**`, `/dist`) is matched against the whole relative path,
      with `**` spanning directories; `*`, `?` and `[...]` stay within one component, `{a,b}` alternates;
    * a regex (`\\.git`, `\\.tmp$`, `^build/`) is searched for in the relative path and in the basename.

    A directory that is ignored takes everything below it along: each ancestor of `relpath` is tested too.
    """
    parts = [p for p in relpath.split("/") if p and p != "."]
    ignore = _ignore_set(tuple(patterns))
    prefix = ""
    for part in parts:
        prefix = f"{prefix}/{part}" if prefix else part
        if ignore.match(prefix, part):
            return True
    return False


@dataclass(frozen=True)
class _IgnoreSet:
    """A list of patterns compiled: the globs of each kind joined into one regex, the regexes kept apart."""

    components: re.Pattern[str] | None  # globs without "/", matched against a basename
    paths: re.Pattern[str] | None  # globs with "/", matched against the whole relative path
    regexes: tuple[re.Pattern[str], ...]  # searched for in both

    def match(self, path: str, base: str) -> bool:
        """Whether the path itself (not its ancestors) is ignored."""
        return ((self.components is not None and self.components.fullmatch(base) is not None)
                or (self.paths is not None and self.paths.fullmatch(path) is not None)
                or any(rx.search(path) is not None or rx.search(base) is not None for rx in self.regexes))


@functools.lru_cache(maxsize=256)
def _ignore_set(patterns: tuple[str, ...]) -> _IgnoreSet:
    components: list[str] = []
    paths: list[str] = []
    regexes: list[re.Pattern[str]] = []
    for pattern in patterns:
        if _REGEX_CHARS.intersection(pattern):
            try:
                regexes.append(re.compile(pattern))
                continue
            except re.error:
                pass  # not a valid regex after all: read it as a glob
        glob = pattern
        while glob.startswith("./"):
            glob = glob[2:]
        glob = glob.rstrip("/")  # "logs/" names a directory: like "logs", it matches any component
        whole_path = "/" in glob  # "/dist" is anchored at the root: only the top-level dist
        glob = glob.lstrip("/")
        if glob:
            (paths if whole_path else components).append(_glob_regex(glob))

    def joined(parts: list[str]) -> re.Pattern[str] | None:
        return re.compile("|".join(f"(?:{p})" for p in parts), re.DOTALL) if parts else None

    return _IgnoreSet(joined(components), joined(paths), tuple(regexes))


def _glob_regex(glob: str) -> str:
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            j = i
            while j < n and glob[j] == "*":
                j += 1
            whole_segment = j - i >= 2 and (i == 0 or glob[i - 1] == "/") and (j == n or glob[j] == "/")
            if not whole_segment:
                out.append("[^/]*")
            elif j < n:  # "**/": any number of leading directories, none included
                out.append("(?:.*/)?")
                j += 1
            elif i == 0:  # the whole pattern is "**"
                out.append(".*")
            else:  # trailing "/**": the directory itself and anything below it
                out[-1:] = ["(?:/.*)?"]
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
                i += 1
                continue
            body = glob[i + 1:j]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append(f"[^/{body}]" if negate else f"[{body}]")
            i = j + 1
        elif c == "{":
            j = glob.find("}", i)
            inner = glob[i + 1:j] if j > 0 else ""
            if j < 0 or "," not in inner or "{" in inner:
                out.append(re.escape(c))
                i += 1
                continue
            out.append("(?:" + "|".join(_glob_regex(alt) for alt in inner.split(",")) + ")")
            i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


# --- libc ---------------------------------------------------------------------------------------------

@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_init1.restype = ctypes.c_int
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_add_watch.restype = ctypes.c_int
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.inotify_rm_watch.restype = ctypes.c_int
    return libc


def _checked(result: int, path: str | None = None) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return result


def _inotify_init() -> int:
    return _checked(int(_libc().inotify_init1(IN_NONBLOCK | IN_CLOEXEC)))


def _inotify_add_watch(fd: int, path: str, mask: int) -> int:
    return _checked(int(_libc().inotify_add_watch(fd, os.fsencode(path), mask)), path)


def _inotify_rm_watch(fd: int, wd: int) -> None:
    # EINVAL: the kernel already dropped it (the directory was deleted); nothing to do.
    _libc().inotify_rm_watch(fd, wd)


def _limit_error(err: OSError, path: str, changes: Sequence[str] = ()) -> WatchError:
    if err.errno == errno.ENOSPC:
        try:
            with open("/proc/sys/fs/inotify/max_user_watches") as f:
                limit = f" ({f.read().strip()})"
        except OSError:
            limit = ""
        return WatchError(errno.ENOSPC, f"the inotify watch limit{limit} is reached; raise it with `sysctl "
                          "fs.inotify.max_user_watches=524288` (persist it in /etc/sysctl.d/), or ignore "
                          "large directories with ignore_watch", path, changes=changes)
    return WatchError(err.errno or errno.EIO, f"cannot watch: {err.strerror}", path, changes=changes)


# --- the watcher --------------------------------------------------------------------------------------

@dataclass(eq=False)
class _Root:
    path: str  # absolute, as given (not resolved: reported paths stay under it)
    is_dir: bool
    base: str  # the directory relative paths, hence ignore patterns, are taken from
    ignore: _IgnoreSet  # the ignore patterns, absolute globs made relative to base

    def rel(self, path: str) -> str:
        """`path` (absolute, normalised, under base) relative to base."""
        return path[len(self.base.rstrip("/")) + 1:] if path != self.base else ""


@dataclass(eq=False)
class _Dir:
    """One inotify watch: a directory of some root's tree, an anchor (the parent of roots), or both."""

    path: str
    root: _Root | None = None  # the tree it belongs to; None: watched only as an anchor
    parent: int | None = None  # the watch of its parent directory in the same tree
    children: set[int] = field(default_factory=set)  # watches of its subdirectories in the same tree
    anchors: dict[str, _Root] = field(default_factory=dict)  # entry name -> the root it is


_LIMITS = (errno.ENOSPC, errno.ENOMEM)  # inotify_add_watch errors that are not about the directory


class TreeWatcher:
    """Watches directory trees (and single files) for changes; see the module docstring for what counts.

    `ignore` takes PM2 `ignore_watch` patterns (see `is_ignored`; `effective_ignore` applies PM2's
    default). Paths are matched relative to `cwd` when given and the root lies under it, as PM2 does with
    the app's cwd (`watch: ["client"]` with `ignore_watch: ["client/img"]`), and relative to the root
    otherwise. Each new entry is tested (directories are not descended into if ignored); roots, and the
    directories above them, never are: they were asked for. A single-file root is watched through its directory,
    so it is followed across editors' save-by-rename; a root directory is too, so it can be deleted and
    recreated (or a symlink root swapped) and be watched again. Symlinks below a root are not followed, and
    a directory reached twice (bind mounts, overlapping roots) is watched once. Subdirectories that cannot
    be read are skipped.
    """

    def __init__(self, roots: Sequence[str], ignore: Sequence[str] = (), *, cwd: str | None = None,
                 ignore_editor_temp: bool = True) -> None:
        patterns = tuple(ignore) + (EDITOR_TEMP_IGNORE if ignore_editor_temp else ())
        self._wds: dict[int, _Dir] = {}
        self._by_path: dict[str, int] = {}
        self._roots: list[_Root] = []
        self._fd = _open_inotify()
        try:
            for given in dict.fromkeys(os.path.abspath(r) for r in roots):
                self._add_root(given, patterns, cwd)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> TreeWatcher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError("TreeWatcher is closed")
        return self._fd

    @property
    def roots(self) -> list[str]:
        return [r.path for r in self._roots]

    @property
    def watched_dirs(self) -> list[str]:
        """The directories watched as part of a tree (anchors, the parents of roots, left out)."""
        return sorted(d.path for d in self._wds.values() if d.root is not None)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # drops every watch
            self._fd = -1
        self._wds.clear()
        self._by_path.clear()

    def read_changes(self) -> list[str]:
        """Read the pending events; return the changed paths, each once, in the order first seen.

        Never blocks: with nothing pending it returns []. At most _MAX_READS buffers are read per call; the
        descriptor stays readable if more is queued. On a queue overflow the roots are returned
        (something changed, what is unknown) and every watch is set up afresh. Running into the watch limit
        while following new directories raises WatchError once the queue is drained, carrying the changes.
        """
        changes: list[str] = []
        overflow = False
        failure: OSError | None = None
        for _ in range(_MAX_READS):
            try:
                data = os.read(self.fileno(), _READ_SIZE)
            except BlockingIOError:
                break
            for wd, mask, name in _events(data):
                if mask & IN_Q_OVERFLOW:
                    overflow = True
                    continue
                try:
                    self._event(wd, mask, name, changes)
                except OSError as e:  # a watch limit (see _add_tree): keep draining, report it at the end
                    failure = e
        if overflow:
            changes.extend(r.path for r in self._roots)
            try:
                self._rebuild()
            except OSError as e:
                failure = e
        changes = list(dict.fromkeys(changes))
        if failure is not None:
            raise _limit_error(failure, failure.filename or "", changes) from failure
        return changes

    # --- setting up --------------------------------------------------------------------------------

    def _add_root(self, path: str, patterns: tuple[str, ...], cwd: str | None) -> None:
        root = _make_root(path, patterns, cwd)
        is_dir = root.is_dir
        self._roots.append(root)
        try:
            self._add_anchor(root)
        except OSError as e:
            # A directory root is still watched without its anchor, it just is not picked up again if it is
            # deleted and recreated; a file root is only watched through its directory.
            if not is_dir or e.errno in _LIMITS:
                raise _limit_error(e, e.filename or path) from e
        if is_dir:
            try:
                self._add_tree(root, path, None, strict=True)
            except OSError as e:
                raise _limit_error(e, e.filename or path) from e

    def _add_anchor(self, root: _Root) -> None:
        parent, name = os.path.split(root.path)
        if name:  # "/" has no parent to watch
            wd = self._add_watch(parent, follow=True)
            d = self._wds.get(wd)
            if d is None:
                d = self._wds[wd] = _Dir(parent)
                self._by_path.setdefault(parent, wd)
            d.anchors[name] = root

    def _add_watch(self, path: str, follow: bool) -> int:
        return _inotify_add_watch(self._fd, path, WATCH_MASK | (0 if follow else IN_DONT_FOLLOW))

    def _add_tree(self, root: _Root, top: str, changes: list[str] | None, strict: bool = False) -> None:
        """Watch `top` and every directory below it that is not ignored; with `changes`, report its content.

        The watch on each directory is added before it is listed, so an entry is either listed or has an
        event on its way (or both: duplicates are removed). Errors other than a watch limit mean the
        directory went away or is unreadable, and it is skipped (unless `strict`, for `top`).
        """
        stack = [top]
        while stack:
            path = stack.pop()
            try:
                wd = self._add_watch(path, follow=path == root.path)
            except OSError as e:
                if e.errno in _LIMITS or (strict and path == top):
                    raise
                continue
            d = self._wds.get(wd)
            if d is None:
                d = self._wds[wd] = _Dir(path)
            elif d.root is not None and (d.root is not root or d.path != path):
                continue  # the same directory reached another way: a bind mount loop, or overlapping roots
            d.root, d.path = root, path
            self._by_path[path] = wd
            parent_wd = self._by_path.get(os.path.dirname(path))
            parent = self._wds.get(parent_wd) if parent_wd is not None and path != root.path else None
            if parent_wd is not None and parent is not None and parent.root is root:
                d.parent = parent_wd
                parent.children.add(wd)
            try:
                entries = list(os.scandir(path))
            except OSError:
                continue
            for entry in entries:
                if root.ignore.match(root.rel(entry.path), entry.name):
                    continue
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    stack.append(entry.path)
                if changes is not None:
                    changes.append(entry.path)

    def _drop_tree(self, wd: int | None, root: _Root | None) -> None:
        """Stop watching tree directory `wd` and the subdirectories below it (those of `root`, if given)."""
        stack = [] if wd is None else [wd]
        while stack:
            w = stack.pop()
            d = self._wds.get(w)
            if d is None or d.root is None or (root is not None and d.root is not root):
                continue
            stack.extend(d.children)
            parent = self._wds.get(d.parent) if d.parent is not None else None
            if parent is not None:
                parent.children.discard(w)
            d.root, d.parent = None, None
            d.children.clear()
            if not d.anchors:
                _inotify_rm_watch(self._fd, w)
                self._forget(w)

    def _forget(self, wd: int) -> None:
        d = self._wds.pop(wd, None)
        if d is not None and self._by_path.get(d.path) == wd:
            del self._by_path[d.path]

    def _rebuild(self) -> None:
        for wd in list(self._wds):
            _inotify_rm_watch(self._fd, wd)
        self._wds.clear()
        self._by_path.clear()
        for root in self._roots:
            try:
                self._add_anchor(root)
            except OSError as e:
                if e.errno in _LIMITS:
                    raise
            if root.is_dir and os.path.isdir(root.path):
                self._add_tree(root, root.path, None)

    # --- events ------------------------------------------------------------------------------------

    def _event(self, wd: int, mask: int, name: str, changes: list[str]) -> None:
        d = self._wds.get(wd)
        if d is None:
            return  # a watch already dropped; its last events may still be queued
        if mask & IN_IGNORED:  # the kernel dropped the watch (directory deleted, file system unmounted)
            self._drop_tree(wd, None)
            self._forget(wd)
            return
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT):
            if d.root is not None and d.path == d.root.path:
                changes.append(d.root.path)
                if mask & IN_MOVE_SELF:  # it still exists, somewhere else: stop following it there
                    self._drop_tree(wd, d.root)
            return
        root = d.anchors.get(name)
        if root is not None:
            self._anchor_event(root, mask, changes)
        tree = d.root
        if tree is None:
            return
        path = os.path.join(d.path, name)
        if tree.ignore.match(tree.rel(path), name):  # its directory is watched, so not ignored
            return
        changes.append(path)
        if mask & IN_ISDIR:
            if mask & (IN_DELETE | IN_MOVED_FROM):
                self._drop_tree(self._by_path.get(path), tree)
            elif mask & (IN_CREATE | IN_MOVED_TO):
                self._add_tree(tree, path, changes)

    def _anchor_event(self, root: _Root, mask: int, changes: list[str]) -> None:
        """Something happened to the entry that is `root`, seen from its parent directory."""
        changes.append(root.path)
        if not root.is_dir:
            return
        if mask & (IN_DELETE | IN_MOVED_FROM | IN_CREATE | IN_MOVED_TO):
            self._drop_tree(self._by_path.get(root.path), root)
        if mask & (IN_CREATE | IN_MOVED_TO) and os.path.isdir(root.path):
            self._add_tree(root, root.path, changes)


def _open_inotify() -> int:
    try:
        return _inotify_init()
    except OSError as e:
        if e.errno == errno.EMFILE:
            raise WatchError(errno.EMFILE, "too many inotify instances (or open files); raise "
                             "fs.inotify.max_user_instances with sysctl, or the open files limit", "inotify") from e
        raise WatchError(e.errno or errno.EIO, f"inotify_init1: {e.strerror}", "inotify") from e


def _events(data: bytes) -> Iterator[tuple[int, int, str]]:
    """(wd, mask, name) of each struct inotify_event in a buffer read from the descriptor."""
    offset = 0
    while offset + _EVENT.size <= len(data):
        wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
        raw = data[offset + _EVENT.size:offset + _EVENT.size + length]
        offset += _EVENT.size + length
        yield wd, mask, os.fsdecode(raw.split(b"\0", 1)[0])


def _make_root(path: str, patterns: tuple[str, ...], cwd: str | None) -> _Root:
    """A root as given: a directory or a file, with its ignore patterns taken relative to the app's cwd
    when the root lies under it, else relative to the root (its directory, for a file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise WatchError(errno.ENOENT, "the path to watch does not exist", path) from None
    except OSError as e:
        raise WatchError(e.errno or errno.EIO, f"cannot watch: {e.strerror}", path) from e
    is_dir = stat.S_ISDIR(st.st_mode)
    top = path if is_dir else os.path.dirname(path)
    base = top
    if cwd is not None:
        cwd = os.path.abspath(cwd)
        if top == cwd or top.startswith(cwd.rstrip("/") + "/"):
            base = cwd
    return _Root(path, is_dir, base, _ignore_set(tuple(_relative_pattern(p, base) for p in patterns)))


def _relative_pattern(pattern: str, base: str) -> str:
    """An absolute glob under `base`, made relative to it. Any other glob starting with "/" is anchored at
    the base (`/dist`), so an absolute path elsewhere simply never matches."""
    prefix = base.rstrip("/") + "/"
    if pattern.startswith(prefix) and not _REGEX_CHARS.intersection(pattern):
        return pattern[len(prefix):]
    return pattern
