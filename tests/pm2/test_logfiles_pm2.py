"""PM2's log files, PM2 7 and pmsd side by side (issue 16): the same app with the same file options, and what each
writes. pmsd's god writes the files here (tests/e2e/test_god.py's `god` fixture), as it does for a user.

Where they differ on purpose (README, "Where pmsd differs"): PM2 prefixes or wraps each chunk a write() of the app
delivered, pmsd each line; so PM2's JSON record may hold several lines, and its timestamped file may hold a
prefix with nothing after it. The comparison reads both as lines.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import god  # noqa: F401  (the fixture)
from tests.e2e.helpers import APPS, Pmsd, wait_for
from tests.pm2.conftest import Manager

pytestmark = [pytest.mark.pm2, pytest.mark.e2e]
TALKER = os.path.join(APPS, "talker.py")
TALK = {"LINES": "4", "ERR_EVERY": "2", "TAG": "t"}  # t err 0, t out 1, t err 2, t out 3
STAMP = re.compile(r"\d")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _start_both(pm2: Manager, pmsd: Pmsd, name: str, *options: str, files: tuple[str, ...]) -> tuple[Path, Path]:
    """Start the talker with `options` (paths relative to each tool's own log directory) in both; wait for
    `files` to hold all their lines. The two log directories."""
    pm2_dir, pmsd_dir = Path(pm2.cwd, "logs"), Path(pmsd.cwd, "logs")
    for tool, base in ((pm2, pm2_dir), (pmsd, pmsd_dir)):
        resolved = [str(base / option) if option.endswith(".log") else option for option in options]
        if isinstance(tool, Manager):
            tool.ok("start", TALKER, "--name", name, *resolved, env=TALK)
        else:
            tool.run("start", TALKER, "--name", name, *resolved, env=TALK)
    for base in (pm2_dir, pmsd_dir):
        wait_for(functools.partial(_all_written, base, files), 15, f"lines in {files} ({base})")
    return pm2_dir, pmsd_dir


def _all_written(base: Path, files: tuple[str, ...]) -> bool | None:
    return all(_text_lines(base / name) for name in files) or None


def _text_lines(path: Path) -> list[str]:
    """The app's lines in a file, whatever the wrapping: JSON records' messages, or the text after a prefix."""
    lines = []
    for line in _lines(path):
        if line.startswith("{"):
            record = json.loads(line)
            # PM2 wraps each chunk: a newline written on its own (Python's stderr) is a record with no line
            lines += [f"{record['type']}|{text}" for text in record["message"].splitlines() if text]
        else:
            lines.append(line)
    return lines


def _complete(path: Path, count: int) -> bool:
    return len([line for line in _text_lines(path) if not line.endswith(": ")]) >= count


def test_per_stream_files_and_the_combined_log_hold_the_same_lines(pm2: Manager, god: Pmsd,  # noqa: F811
                                                                     token: str) -> None:
    pm2_dir, pmsd_dir = _start_both(pm2, god, f"p-{token}", "-o", "out.log", "-e", "err.log", "-l", "all.log",
                                    files=("out.log", "err.log", "all.log"))
    wait_for(lambda: all(_complete(d / "all.log", 4) for d in (pm2_dir, pmsd_dir)) or None, 15, "4 combined lines")
    for name in ("out.log", "err.log"):
        assert _lines(pmsd_dir / name) == _lines(pm2_dir / name), name
    # The two streams are two pipes in both: the combined file keeps each stream's order, not their interleaving.
    assert sorted(_lines(pmsd_dir / "all.log")) == sorted(_lines(pm2_dir / "all.log"))


@pytest.mark.parametrize("options", [("--time",), ("--log-date-format", "YYYY-MM-DD HH:mm Z")])
def test_timestamp_prefixes_have_pm2s_shape(pm2: Manager, god: Pmsd, token: str,  # noqa: F811
                                             options: tuple[str, ...]) -> None:
    pm2_dir, pmsd_dir = _start_both(pm2, god, f"t-{token}", *options, "-o", "out.log", "-e", "err.log",
                                    files=("out.log", "err.log"))
    wait_for(lambda: all(_complete(d / f, 2) for d in (pm2_dir, pmsd_dir) for f in ("out.log", "err.log")) or None,
             15, "2 lines per stream")
    for name in ("out.log", "err.log"):
        # PM2 prefixes each chunk, and a chunk's trailing newline leaves a prefix alone on a line: not a line
        # of the app's (pmsd never writes one).
        theirs = [STAMP.sub("D", line) for line in _lines(pm2_dir / name) if not line.endswith(": ")]
        ours = [STAMP.sub("D", line) for line in _lines(pmsd_dir / name)]
        assert ours == theirs, name


def test_json_records_have_pm2s_shape(pm2: Manager, god: Pmsd, token: str) -> None:  # noqa: F811
    name = f"j-{token}"
    pm2_dir, pmsd_dir = _start_both(pm2, god, name, "--log-type", "json", "-o", "out.log", "-e", "err.log",
                                    files=("out.log", "err.log"))
    wait_for(lambda: all(_complete(d / f, 2) for d in (pm2_dir, pmsd_dir) for f in ("out.log", "err.log")) or None,
             15, "2 lines per stream")
    records: dict[str, list[dict[str, Any]]] = {}
    for tool, base, ids in (("pm2", pm2_dir, pm2.app(name)["pm_id"]), ("pmsd", pmsd_dir, god.app(name)["pm_id"])):
        records[tool] = [json.loads(line) for f in ("out.log", "err.log") for line in _lines(base / f)]
        assert all(record["process_id"] == ids and record["app_name"] == name for record in records[tool])
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["timestamp"]) for r in records[tool])
    assert {tuple(r) for r in records["pmsd"]} == {tuple(r) for r in records["pm2"]}  # the same keys, in order
    for stream in ("out.log", "err.log"):
        assert _text_lines(pmsd_dir / stream) == _text_lines(pm2_dir / stream)


def test_instances_get_their_own_files_unless_merge_logs(pm2: Manager, god: Pmsd, token: str) -> None:  # noqa: F811
    own, merged = f"i-{token}", f"m-{token}"
    _start_both(pm2, god, own, "-i", "2", "-o", "i/out.log", "-e", "i/err.log", files=())
    _start_both(pm2, god, merged, "-i", "2", "--merge-logs", "-o", "m/out.log", "-e", "m/err.log", files=())

    def names(tool: Manager | Pmsd, app: str, directory: str) -> list[str] | None:
        """The files in the directory, each instance's id written as its rank among the app's ids."""
        ids = sorted(int(proc["pm_id"]) for proc in tool.jlist() if proc["name"] == app)
        found = sorted(os.listdir(Path(tool.cwd, "logs", directory)))
        ranked = [re.sub(r"-(\d+)\.log$", lambda m: f"-#{ids.index(int(m.group(1)))}.log", f) for f in found]
        complete = all(_lines(Path(tool.cwd, "logs", directory, f)) for f in found)
        return ranked if complete and len(found) >= (4 if directory == "i" else 2) else None

    for directory, app in (("i", own), ("m", merged)):
        theirs = wait_for(functools.partial(names, pm2, app, directory), 15, f"PM2's files in {directory}")
        ours = wait_for(functools.partial(names, god, app, directory), 15, f"pmsd's files in {directory}")
        assert ours == theirs
    assert sorted(_lines(Path(god.cwd, "logs", "m", "out.log"))) == ["t out 1"] * 2 + ["t out 3"] * 2


def test_pm2_log_paths_names_the_files_as_pm2_does(pm2: Manager, god: Pmsd, token: str) -> None:  # noqa: F811
    """`pmsd set pm2_log_paths true`: an app with no file options logs where PM2 would put its files."""
    home = Path(god.cwd, "pm2home")
    god.env["PM2_HOME"] = str(home)
    god.run("set", "pm2_log_paths", "true")
    single, several = f"d_{token}!x", f"c.{token}"
    for tool in (pm2, god):
        tool.run("start", TALKER, "--name", single, env=TALK)
        tool.run("start", TALKER, "--name", several, "-i", "2", env=TALK)

    def names(tool: Manager | Pmsd, logs: Path) -> list[str] | None:
        ids = sorted(int(proc["pm_id"]) for proc in tool.jlist() if proc["name"] == several)
        found = sorted(os.listdir(logs)) if logs.exists() else []
        ranked = [re.sub(r"-(\d+)\.log$", lambda m: f"-#{ids.index(int(m.group(1)))}.log", f) for f in found]
        return ranked if len(found) == 6 and all(_lines(logs / f) for f in found) else None

    theirs = wait_for(functools.partial(names, pm2, Path(pm2.env["PM2_HOME"], "logs")), 15, "PM2's files")
    ours = wait_for(functools.partial(names, god, home / "logs"), 15, "pmsd's files",
                    describe=lambda: str(sorted(os.listdir(home / "logs"))))
    assert ours == theirs
