"""The saved app list: written atomically with a backup generation, read back with a fallback."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pmsd.errors import PmsdError
from pmsd.state.dump import DumpFile, Saved, SavedApp
from tests.unit.helpers import make_record


def _saved(*names: str) -> Saved:
    apps = [SavedApp(make_record(pm_id=index, name=name), index % 2 == 0, {"K": f"v{index}"})
            for index, name in enumerate(names)]
    return Saved(saved_at=1, next_id=len(names), apps=apps, ports={"web": [8000]})


def test_round_trip(tmp_path: Path) -> None:
    dump = DumpFile(str(tmp_path))
    dump.write(_saved("api", "worker"))
    read = dump.read([])
    assert read is not None
    assert [(a.record.name, a.running, a.env) for a in read.apps] == [("api", True, {"K": "v0"}),
                                                                      ("worker", False, {"K": "v1"})]
    assert read.ports == {"web": [8000]} and read.next_id == 2
    assert stat.S_IMODE(os.stat(dump.path).st_mode) == 0o600


def test_nothing_saved_is_none(tmp_path: Path) -> None:
    assert DumpFile(str(tmp_path)).read([]) is None


@pytest.mark.parametrize("damage", ["", "{bad", "[]", '{"version": 1}', '{"version": 2, "next_id": 0, "apps": []}'])
def test_a_damaged_save_falls_back_to_the_one_before(tmp_path: Path, damage: str) -> None:
    dump = DumpFile(str(tmp_path))
    dump.write(_saved("api"))
    dump.write(_saved("api", "worker"))
    Path(dump.path).write_text(damage)
    warnings: list[str] = []
    read = dump.read(warnings)
    assert read is not None and [a.record.name for a in read.apps] == ["api"]
    assert len(warnings) == 1 and "using the save before it" in warnings[0]


def test_a_lost_save_falls_back_too(tmp_path: Path) -> None:
    dump = DumpFile(str(tmp_path))
    dump.write(_saved("api"))
    dump.write(_saved("api", "worker"))
    os.unlink(dump.path)
    warnings: list[str] = []
    read = dump.read(warnings)
    assert read is not None and [a.record.name for a in read.apps] == ["api"] and "is missing" in warnings[0]


def test_a_damaged_save_without_a_backup_says_what_is_wrong(tmp_path: Path) -> None:
    dump = DumpFile(str(tmp_path))
    Path(dump.path).write_text("{bad")
    with pytest.raises(PmsdError, match="cannot be read") as caught:
        dump.read([])
    assert caught.value.hint is not None and "pmsd save" in caught.value.hint


def test_a_damaged_save_never_becomes_the_backup(tmp_path: Path) -> None:
    dump = DumpFile(str(tmp_path))
    dump.write(_saved("api"))
    dump.write(_saved("api", "worker"))
    backup = Path(dump.backup_path).read_text()
    Path(dump.path).write_text("{bad")
    dump.write(_saved("third"))
    assert Path(dump.backup_path).read_text() == backup
    assert json.loads(Path(dump.path).read_text())["apps"][0]["spec"]["name"] == "third"
