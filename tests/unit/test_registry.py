from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from pmsd.errors import PmsdError
from pmsd.model.record import AppRecord, RegistryData
from pmsd.state import listfile
from pmsd.state.registry import FORMAT_VERSION, Registry
from tests.unit.helpers import make_record, make_spec

TRANSACTIONS_PER_PROCESS = 20


def _add(registry: Registry, name: str) -> int:
    with registry.transaction() as data:
        pm_id = data.allocate_id()
        data.apps.append(AppRecord(pm_id=pm_id, spec=make_spec(name=name), created_at=1))
        return pm_id


def test_empty_registry_reads_as_empty(tmp_path: Path) -> None:
    data = Registry(str(tmp_path / "state")).read()
    assert (data.next_id, data.apps) == (0, [])
    assert not (tmp_path / "state").exists()  # reading never creates anything


def test_transaction_writes_a_private_file_atomically(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path / "state"))
    _add(registry, "api")
    assert stat.S_IMODE(os.stat(registry.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(registry.state_dir).st_mode) == 0o700
    assert sorted(os.listdir(registry.state_dir)) == ["registry.json", "registry.lock"]
    document = json.loads(Path(registry.path).read_text())
    assert document["version"] == FORMAT_VERSION
    assert document["next_id"] == 1
    assert [app["spec"]["name"] for app in document["apps"]] == ["api"]

    inode = os.stat(registry.path).st_ino
    _add(registry, "worker")
    assert os.stat(registry.path).st_ino != inode  # renamed over, never rewritten in place
    assert stat.S_IMODE(os.stat(registry.path).st_mode) == 0o600


def test_records_round_trip(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    record = make_record(pm_id=0, restart_offset=-2, name="日本 api", args=("a b",), stop_exit_codes=(0, 3),
                         env={"K": "v"}, user="www-data")
    with registry.transaction() as data:
        data.next_id = 1
        data.apps.append(record)
    assert registry.read().apps == [record]


def test_allocate_id_is_monotonic_while_apps_exist() -> None:
    data = RegistryData()
    for expected in range(3):
        pm_id = data.allocate_id()
        assert pm_id == expected
        data.apps.append(make_record(pm_id=pm_id, name=f"app{pm_id}"))
    data.apps = [app for app in data.apps if app.pm_id != 2]
    assert data.allocate_id() == 3  # a deleted id is not reused while other apps exist


def test_allocate_id_starts_over_when_nothing_is_registered() -> None:
    data = RegistryData(next_id=7)
    assert data.allocate_id() == 0
    assert data.next_id == 1


def test_lookups() -> None:
    data = RegistryData(next_id=2, apps=[make_record(0, name="a"), make_record(1, name="b")])
    assert data.by_name("b") is data.apps[1]
    assert data.by_id(0) is data.apps[0]
    assert data.by_name("c") is None and data.by_id(5) is None


def test_ids_survive_across_transactions(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    assert [_add(registry, name) for name in ("a", "b", "c")] == [0, 1, 2]
    with registry.transaction() as data:
        data.apps = [app for app in data.apps if app.name != "a"]
    assert _add(registry, "d") == 3
    with registry.transaction() as data:
        data.apps.clear()
    assert _add(registry, "e") == 0


def test_exception_inside_transaction_leaves_the_file_unchanged(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    _add(registry, "api")
    before = Path(registry.path).read_bytes()
    with pytest.raises(RuntimeError, match="changed my mind"), registry.transaction() as data:
        data.allocate_id()
        data.apps.append(make_record(pm_id=1, name="worker"))
        raise RuntimeError("changed my mind")
    assert Path(registry.path).read_bytes() == before
    assert [app.name for app in registry.read().apps] == ["api"]


def test_failed_write_leaves_the_old_registry(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    _add(registry, "api")
    before = Path(registry.path).read_bytes()
    with pytest.raises(TypeError), registry.transaction() as data:
        data.apps.append(make_record(pm_id=1, name="bad", env={"K": object()}))  # not JSON-serialisable
    assert Path(registry.path).read_bytes() == before


def test_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    _add(registry, "api")
    with pytest.raises(TypeError), registry.transaction() as data:
        data.apps.append(make_record(pm_id=1, name="bad", env={"K": object()}))
    assert sorted(os.listdir(tmp_path)) == ["registry.json", "registry.lock"]  # the first write has no backup


def _worker(state_dir: str, tag: str) -> None:
    registry = Registry(state_dir)
    for index in range(TRANSACTIONS_PER_PROCESS):
        _add(registry, f"{tag}-{index}")


def test_concurrent_transactions_serialise(tmp_path: Path) -> None:
    state_dir = str(tmp_path / "state")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_worker, args=(state_dir, tag)) for tag in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    data = Registry(state_dir).read()
    assert len(data.apps) == 2 * TRANSACTIONS_PER_PROCESS
    assert len({app.pm_id for app in data.apps}) == 2 * TRANSACTIONS_PER_PROCESS
    assert len({app.name for app in data.apps}) == 2 * TRANSACTIONS_PER_PROCESS
    assert data.next_id == 2 * TRANSACTIONS_PER_PROCESS
    assert sorted(app.pm_id for app in data.apps) == list(range(2 * TRANSACTIONS_PER_PROCESS))


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"version": 1, "next_id": 0, "apps": [', b"\xff\xfe"])
def test_corrupt_registry_names_the_file(tmp_path: Path, content: bytes) -> None:
    registry = Registry(str(tmp_path))
    Path(registry.path).write_bytes(content)
    with pytest.raises(PmsdError) as caught:
        registry.read()
    assert registry.path in caught.value.message
    assert caught.value.hint


def test_corrupt_registry_fails_the_transaction_too(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    Path(registry.path).write_text("{not json")
    with pytest.raises(PmsdError, match=str(registry.path)), registry.transaction():
        pass
    assert Path(registry.path).read_text() == "{not json"


def test_registry_of_another_format_version(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    Path(registry.path).write_text(json.dumps({"version": FORMAT_VERSION + 1, "next_id": 0, "apps": []}))
    with pytest.raises(PmsdError) as caught:
        registry.read()
    assert registry.path in caught.value.message and "format version" in caught.value.message


@pytest.mark.parametrize("document", [
    [],
    {"version": FORMAT_VERSION},
    {"version": FORMAT_VERSION, "next_id": 0, "apps": [{"pm_id": 0}]},
    {"version": FORMAT_VERSION, "next_id": 0, "apps": None},
])
def test_registry_of_the_wrong_shape_names_the_file(tmp_path: Path, document: object) -> None:
    registry = Registry(str(tmp_path))
    Path(registry.path).write_text(json.dumps(document))
    with pytest.raises(PmsdError) as caught:
        registry.read()
    assert registry.path in caught.value.message


def test_unwritable_state_dir_is_a_permission_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    parent = tmp_path / "locked"
    parent.mkdir(mode=0o500)
    registry = Registry(str(parent / "state"))
    with pytest.raises(PmsdError, match="permission denied"), registry.transaction():
        pass


def test_env_file_path(tmp_path: Path) -> None:
    assert Registry(str(tmp_path)).env_file(7) == str(tmp_path / "env" / "7.env")


# --- the backup generation ------------------------------------------------------------------------------


def test_each_write_keeps_the_version_it_replaces(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    _add(registry, "api")
    before = (tmp_path / "registry.json").read_text()
    _add(registry, "worker")
    assert (tmp_path / "registry.json.bak").read_text() == before
    assert [app.name for app in registry.read().apps] == ["api", "worker"]
    assert stat.S_IMODE(os.stat(tmp_path / "registry.json.bak").st_mode) == 0o600


@pytest.mark.parametrize("damage", ["{bad", "[1]", '{"version": 1, "apps": [{}]}', ""])
def test_a_damaged_registry_is_set_aside_and_the_backup_read(tmp_path: Path, damage: str) -> None:
    warnings: list[str] = []
    registry = Registry(str(tmp_path), warnings)
    _add(registry, "api")
    _add(registry, "worker")
    (tmp_path / "registry.json").write_text(damage)
    assert [app.name for app in registry.read().apps] == ["api"]  # the version before the last write
    assert len(warnings) == 1 and "is used instead" in warnings[0]
    broken = [name for name in os.listdir(tmp_path) if name.startswith("registry.json.broken-")]
    assert len(broken) == 1 and (tmp_path / broken[0]).read_text() == damage
    _add(registry, "again")  # the next change writes a good registry, and keeps the good backup
    assert [app.name for app in registry.read().apps] == ["api", "again"]
    assert [app.name for app in Registry(str(tmp_path)).read().apps] == ["api", "again"]


def test_a_damaged_registry_without_a_backup_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "registry.json").write_text("{bad")
    with pytest.raises(PmsdError, match="cannot be read"):
        Registry(str(tmp_path)).read()


def test_a_damaged_registry_never_becomes_the_backup(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    _add(registry, "api")
    _add(registry, "worker")
    good_backup = (tmp_path / "registry.json.bak").read_text()
    (tmp_path / "registry.json").write_text("{bad")
    _add(registry, "third")
    assert (tmp_path / "registry.json.bak").read_text() == good_backup


def test_a_damaged_registry_without_a_backup_falls_back_to_the_last_save(tmp_path: Path) -> None:
    from pmsd.state.dump import DumpFile, Saved, SavedApp

    DumpFile(str(tmp_path)).write(Saved(1, 5, [SavedApp(make_record(pm_id=3, name="saved"), True, {})], {}))
    (tmp_path / "registry.json").write_text("{bad")
    warnings: list[str] = []
    data = Registry(str(tmp_path), warnings).read()
    assert [(app.pm_id, app.name) for app in data.apps] == [(3, "saved")] and data.next_id == 5
    assert "the apps of the last `pmsd save`" in warnings[0]


def test_backup_is_copied_where_hard_links_are_not_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(source: str, target: str) -> None:
        raise PermissionError(1, "Operation not permitted")

    registry = Registry(str(tmp_path))
    _add(registry, "api")
    before = (tmp_path / "registry.json").read_text()
    monkeypatch.setattr(os, "link", no_links)
    _add(registry, "worker")
    assert (tmp_path / "registry.json.bak").read_text() == before
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def _fsynced_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path os.fsync() is called on from now on, in order."""
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return synced


def test_an_env_file_written_in_a_transaction_is_synced_after_the_start_and_before_the_registry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new app's environment file need not be durable before its unit is asked for (the start waited for two
    fsyncs), only before the registry that names it is saved."""
    from pmsd.state.envfiles import write_env_file

    registry = Registry(str(tmp_path / "state"))
    env_file = registry.env_file(0)
    assert not registry.sync_when_saved(env_file)  # outside a transaction the writer syncs it itself
    synced = _fsynced_paths(monkeypatch)
    with registry.transaction() as data:
        assert registry.sync_when_saved(env_file)
        write_env_file(env_file, {"A": "1"}, durable=False)
        registry.pending.intend([AppRecord(pm_id=0, spec=make_spec(name="api"), created_at=1)])
        assert synced == []  # the unit would be started here: nothing has waited for the disk yet
        data.apps.append(AppRecord(pm_id=0, spec=make_spec(name="api"), created_at=1))
    assert synced[:2] == [env_file, registry.env_dir]
    assert synced[2].startswith(registry.path) and synced[3] == registry.state_dir
    assert len(synced) == 4  # the intent log is never synced (it guards against a killed command only)


def test_an_env_file_that_cannot_be_synced_aborts_the_transaction(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A write-back that fails at fsync (a full disk with delayed allocation) fails the command like any full
    disk: the registry is not saved, and the undo registered for the new app runs."""
    from pmsd.state.atomic import WriteError
    from pmsd.state.envfiles import write_env_file

    registry = Registry(str(tmp_path / "state"))
    env_file = registry.env_file(0)
    undone: list[bool] = []

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match="no space left"), registry.transaction() as data:
        registry.sync_when_saved(env_file)
        write_env_file(env_file, {"A": "1"}, durable=False)
        registry.undo_unless_saved(lambda: undone.append(True))
        data.apps.append(AppRecord(pm_id=0, spec=make_spec(name="api"), created_at=1))
        monkeypatch.setattr(os, "fsync", failing_fsync)
    assert undone == [True] and not os.path.exists(registry.path)


def test_the_registry_is_written_an_app_a_line_and_reads_back(tmp_path: Path) -> None:
    """One line per app from the C encoder (json's indent= is pure Python: 0.2 s per write at 1,000 apps):
    still easy to read and diff, and read back unchanged, non-ASCII included."""
    registry = Registry(str(tmp_path / "state"))
    with registry.transaction() as data:
        for pm_id, name in enumerate(("api", "wörker", "jobs")):
            data.apps.append(AppRecord(pm_id=data.allocate_id(), spec=make_spec(name=name, env={"K": "é"}),
                                       created_at=pm_id))
    lines = Path(registry.path).read_text(encoding="utf-8").splitlines()
    assert lines[0] == f'{{"version": {FORMAT_VERSION}, "next_id": 3, "apps": [' and lines[-1] == "]}"
    assert [json.loads(line.rstrip(","))["spec"]["name"] for line in lines[1:-1]] == ["api", "wörker", "jobs"]
    assert [app.spec for app in registry.read().apps] == [app.spec for app in data.apps]


def test_an_unchanged_registry_is_parsed_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """god parses its registry when it changes; the commands it forks read it from that parse. A new file (a
    transaction's rename) or one changed in place (an editor) is parsed again."""
    import pmsd.state.registry as registry_module

    registry = Registry(str(tmp_path / "state"))
    _add(registry, "api")
    parses: list[str] = []
    real_loads = listfile.loads_with_list

    def counting_loads(text: str, *args: Any) -> Any:
        parses.append(registry.path)
        return real_loads(text, *args)

    monkeypatch.setattr(registry_module, "loads_with_list", counting_loads)
    first = registry.read()
    first.apps.append(AppRecord(pm_id=7, spec=make_spec(name="mutated"), created_at=1))  # the caller's copy only
    # What a transaction writes is what the next read gets: no parse at all.
    assert [app.name for app in Registry(registry.state_dir).read().apps] == ["api"] and parses == []
    _add(registry, "web")
    assert [app.name for app in registry.read().apps] == ["api", "web"] and parses == []
    text = Path(registry.path).read_text().replace('"api"', '"APi"')
    with open(registry.path, "r+") as handle:  # same inode, same size
        handle.write(text)
    assert [app.name for app in registry.read().apps] == ["APi", "web"] and parses == [registry.path]


def test_a_registry_read_parses_only_the_apps_whose_lines_changed(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """god reads the registry after every command: the records of lines it read before are reused (35 ms of
    parsing at 1,000 apps, for the one app a command changed), and the result is what a whole parse gives."""
    import pmsd.state.registry as registry_module

    registry = Registry(str(tmp_path / "state"))
    for name in ("api", "web", "worker"):
        _add(registry, name)
    registry_module._PARSED.clear()  # as in god, which did not write it: read from the file
    assert [app.name for app in registry.read().apps] == ["api", "web", "worker"]
    parsed: list[str] = []
    real = AppRecord.from_json

    def counting(raw: Any) -> AppRecord:
        parsed.append(raw["spec"]["name"])
        return real(raw)

    monkeypatch.setattr(AppRecord, "from_json", staticmethod(counting))
    text = Path(registry.path).read_text().replace('"web"', '"WEB"')
    Path(registry.path).write_text(text)
    again = registry.read()
    assert [app.name for app in again.apps] == ["api", "WEB", "worker"] and parsed == ["WEB"]
    whole = json.loads(text)
    assert json.loads(json.dumps([app.to_json() for app in again.apps])) == whole["apps"]
    assert again.next_id == whole["next_id"]


@pytest.mark.parametrize("edit", [
    lambda text: json.dumps(json.loads(text), indent=2),  # laid out otherwise: parsed whole
    lambda text: text.replace("},\n{", "}, {", 1),  # two apps on one line
    lambda text: text.replace("}\n]}", "},\n]}"),  # a comma after the last app: not JSON
    lambda text: text.replace('"apps": [', '"apps": [ ', 1),
])
def test_a_registry_laid_out_otherwise_reads_as_json_reads_it(tmp_path: Path, edit: Any) -> None:
    import pmsd.state.registry as registry_module

    registry = Registry(str(tmp_path / "state"))
    for name in ("api", "web"):
        _add(registry, name)
    registry_module._PARSED.clear()
    registry.read()
    text = edit(Path(registry.path).read_text())
    Path(registry.path).write_text(text)
    try:
        expected = [app["spec"]["name"] for app in json.loads(text)["apps"]]
    except ValueError:  # not JSON: damaged, said so (the backup is read instead), never read as if it were
        registry.read()
        assert any("damaged" in warning or "cannot be read" in warning for warning in registry.warnings)
        return
    assert [app.name for app in registry.read().apps] == expected and not registry.warnings


def test_a_write_encodes_only_the_apps_that_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An app read from the file and left alone keeps its line as it was read (encoding all of 1,000 apps took
    ~10 ms of every `start`); a replaced record is encoded again. Read back, the file is what it says."""
    import pmsd.state.registry as registry_module

    registry = Registry(str(tmp_path / "state"))
    for name in ("api", "web", "worker"):
        _add(registry, name)
    text = Path(registry.path).read_text()
    spaced = text.replace('"name": "api"', '"name":   "api"')  # a line no encoder writes: kept as it is
    Path(registry.path).write_text(spaced)
    registry_module._PARSED.clear()
    encoded: list[str] = []
    real = AppRecord.to_json

    def counting(record: AppRecord) -> dict[str, Any]:
        encoded.append(record.name)
        return real(record)

    monkeypatch.setattr(AppRecord, "to_json", counting)
    with registry.transaction() as data:
        web = next(app for app in data.apps if app.name == "web")
        data.apps[data.apps.index(web)] = AppRecord(pm_id=web.pm_id, spec=make_spec(name="WEB"), created_at=2)
    assert encoded == ["WEB"]
    written = Path(registry.path).read_text()
    assert '"name":   "api"' in written
    registry_module._PARSED.clear()
    registry_module._LINES.clear()
    assert [(app.name, app.created_at) for app in registry.read().apps] == [("api", 1), ("WEB", 2), ("worker", 1)]
    with registry.transaction() as data:  # read afresh: every line is known again, none encoded
        data.next_id += 1
    assert encoded == ["WEB"]
    assert Path(registry.path).read_text().splitlines()[1:] == written.splitlines()[1:]


def test_a_record_changed_in_a_transaction_that_failed_is_not_what_the_next_read_gets(tmp_path: Path) -> None:
    """Regression: a record's fields (not its spec) are set in place; the parse kept for the next read (and the
    line kept for the next write) handed out the same objects, so a change left by a failed transaction was
    read back in the same process (god's, a long-lived one) although the file never had it."""
    registry = Registry(str(tmp_path / "state"))
    _add(registry, "api")
    with pytest.raises(RuntimeError), registry.transaction() as data:
        data.apps[0].restart_offset = 5
        raise RuntimeError("the command failed after changing the record")
    assert registry.read().apps[0].restart_offset == 0
    with registry.transaction() as data:
        data.apps[0].restart_offset = 3  # changed in place: encoded again, not written as the line read
    assert json.loads(Path(registry.path).read_text().splitlines()[1])["restart_offset"] == 3
    assert registry.read().apps[0].restart_offset == 3
