"""`pmsd export`: plain unit files for pmsd's apps, against golden files, and checked by systemd's own tools
(`systemd-analyze verify`, `systemctl --root=... enable`, which only touch a directory, never a manager)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

from pmsd.api.export import GOD_ONLY, PRELOAD_FILE, export_units
from pmsd.context import Context
from pmsd.definition.preload import NODE_PRELOAD
from pmsd.definition.settings import SETTINGS
from pmsd.errors import NotFoundError, UsageError
from pmsd.model.record import AppRecord
from pmsd.model.spec import AppSpec
from pmsd.state.envfiles import read_env_file, write_env_file
from tests.unit.helpers import GOLDEN_DIR, UPDATE_GOLDEN, make_spec
from tests.unit.test_units import CLUSTER_NODE_SPEC

EXPORT_GOLDEN = os.path.join(GOLDEN_DIR, "export")
FORK_SPEC = make_spec(name="api", env={"PORT": "3000", "SECRET": "s3cret"}, watch=("/srv/app",),
                      exp_backoff_restart_delay=100, max_memory_restart=256 * 1024**2, memory_max=512 * 1024**2)
CRON_SPEC = make_spec(name="nightly", script="/srv/app/report.py", argv=("/usr/bin/python3", "/srv/app/report.py"),
                      cron_restart="30 3 * * 1-5", autorestart=False)


def _no_systemd(self: Context) -> NoReturn:
    raise AssertionError("export must not reach systemd")


@pytest.fixture(autouse=True)
def no_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Context, "manager", property(_no_systemd))


def _register(ctx: Context, *specs: AppSpec) -> None:
    """Register the apps as pmsd does (a record per instance, ids in order) with an environment file each."""
    with ctx.registry.transaction() as data:
        for spec in specs:
            count = spec.instances if spec.clustered else 1
            for index, pm_id in enumerate(data.allocate_ids(count)):
                instance = index if spec.clustered else None
                record = AppRecord(pm_id, spec, created_at=1_700_000_000_000, instance=instance, increment=instance)
                data.apps.append(record)
                write_env_file(ctx.registry.record_env_file(record),
                               {**spec.env, "pm_id": str(pm_id), "name": spec.name, "HOME": "/home/dev"})


def _context(tmp_path: Path, user: bool = True) -> Context:
    return Context(user=user, environ={"HOME": "/home/dev"}, state_dir=str(tmp_path / "state"))


def _files(directory: Path) -> dict[str, str]:
    return {str(path.relative_to(directory)): path.read_text(encoding="utf-8")
            for path in sorted(directory.rglob("*")) if path.is_file()}


def _check_golden(scope: str, files: dict[str, str]) -> None:
    """Every unit file and the README, byte for byte (env files and the preload are copies: checked below)."""
    golden = os.path.join(EXPORT_GOLDEN, scope)
    rendered = {name: text for name, text in files.items() if not name.startswith("env/") and name != PRELOAD_FILE}
    if UPDATE_GOLDEN:
        shutil.rmtree(golden, ignore_errors=True)
        os.makedirs(golden)
        for name, text in rendered.items():
            Path(golden, name).write_text(text, encoding="utf-8", newline="")
    assert sorted(rendered) == sorted(os.listdir(golden))
    for name, text in rendered.items():
        expected = Path(golden, name).read_text(encoding="utf-8")
        assert text == expected, f"{golden}/{name} differs; regenerate with PMSD_UPDATE_GOLDEN=1 if intended"


@pytest.mark.parametrize("scope", ["user", "system"])
def test_export_matches_golden(tmp_path: Path, scope: str) -> None:
    ctx = _context(tmp_path, user=scope == "user")
    _register(ctx, FORK_SPEC, CLUSTER_NODE_SPEC, CRON_SPEC)
    out = tmp_path / "out"
    written = export_units(ctx, str(out))
    files = _files(out)
    assert sorted(written) == sorted(str(out / name) for name in files)
    _check_golden(scope, files)
    assert files[PRELOAD_FILE] == Path(NODE_PRELOAD).read_text(encoding="utf-8")


def test_units_point_at_the_installed_files(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    _register(ctx, FORK_SPEC, CLUSTER_NODE_SPEC, CRON_SPEC)
    files = _files(tmp_path / "out") if export_units(ctx, str(tmp_path / "out")) else {}
    assert "EnvironmentFile=%h/.config/pmsd-export/env/pmsd-api.env" in files["pmsd-api.service"].splitlines()
    template = files["pmsd-web@.service"].splitlines()
    assert "EnvironmentFile=%h/.config/pmsd-export/env/pmsd-web@%i.env" in template
    assert "ExecStart=/usr/bin/node --require %h/.config/pmsd-export/node-preload.js /srv/web/server.js" in template
    assert not any("pmsd/preload" in text or "state" in text for text in files.values() if "EnvironmentFile" in text)
    # The cron job restarts the app with systemctl, never with pmsd.
    assert "ExecStart=systemctl --user restart pmsd-nightly.service" in files["pmsd.cron-nightly.service"]
    assert "pmsd restart" not in files["pmsd.cron-nightly.service"]


def test_god_only_features_are_listed_not_invented(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    _register(ctx, FORK_SPEC, CRON_SPEC)
    export_units(ctx, str(tmp_path / "out"))
    api = (tmp_path / "out" / "pmsd-api.service").read_text(encoding="utf-8")
    header = [line for line in api.splitlines() if line.startswith("# not exported:")]
    assert [line.split()[3] for line in header] == ["exp_backoff_restart_delay", "max_memory_restart", "watch"]
    assert "MemoryMax=536870912" in api.splitlines()  # memory_max has a directive: kept
    assert "# not exported" not in (tmp_path / "out" / "pmsd-nightly.service").read_text(encoding="utf-8")


def test_every_god_only_setting_says_what_becomes_of_it() -> None:
    assert set(GOD_ONLY) == {setting.key for setting in SETTINGS if setting.by_god}


def test_env_files_are_copies_readable_by_their_owner_only(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    _register(ctx, FORK_SPEC, CLUSTER_NODE_SPEC)
    out = tmp_path / "out"
    export_units(ctx, str(out))
    env_dir = out / "env"
    assert stat.S_IMODE(env_dir.stat().st_mode) == 0o700
    names = sorted(path.name for path in env_dir.iterdir())
    assert names == ["pmsd-api.env", *(f"pmsd-web@{n}.env" for n in range(4))]
    for path in env_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_env_file(str(env_dir / "pmsd-api.env"))["SECRET"] == "s3cret"
    assert read_env_file(str(env_dir / "pmsd-web@2.env"))["pm_id"] == "3"
    assert stat.S_IMODE((out / "pmsd-api.service").stat().st_mode) == 0o644


def test_missing_env_file_exports_the_definition_env_with_a_warning(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    _register(ctx, FORK_SPEC)
    os.unlink(ctx.registry.env_file(0))
    export_units(ctx, str(tmp_path / "out"))
    assert read_env_file(str(tmp_path / "out" / "env" / "pmsd-api.env"))["SECRET"] == "s3cret"
    assert ctx.warnings and "api" in ctx.warnings[0]


def test_a_non_empty_directory_is_refused_unless_forced(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    _register(ctx, FORK_SPEC)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(UsageError, match="is not empty") as refused:
        export_units(ctx, str(out))
    assert "--force" in str(refused.value)
    assert sorted(os.listdir(out)) == ["notes.txt"]
    export_units(ctx, str(out), force=True)
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "pmsd-api.service").exists()


def test_a_file_is_no_directory(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    _register(ctx, FORK_SPEC)
    (tmp_path / "out").write_text("")
    with pytest.raises(UsageError, match="not a directory"):
        export_units(ctx, str(tmp_path / "out"))


def test_named_apps_only_and_nothing_registered(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    with pytest.raises(NotFoundError, match="nothing to export"):
        export_units(ctx, str(tmp_path / "empty"))
    assert not (tmp_path / "empty").exists()
    _register(ctx, FORK_SPEC, CLUSTER_NODE_SPEC, CRON_SPEC)
    export_units(ctx, str(tmp_path / "out"), ["2"])  # an id of one instance exports its whole app
    files = _files(tmp_path / "out")
    assert "pmsd-web.target" in files and "pmsd-api.service" not in files
    assert len([name for name in files if name.startswith("env/")]) == 4
    with pytest.raises(NotFoundError):
        export_units(ctx, str(tmp_path / "other"), ["nope"])


# ------------------------------------------------------------------------- checked by systemd's own tools

SLEEP = shutil.which("sleep", path="/usr/bin:/bin") or "/bin/sleep"
REAL_FORK = make_spec(name="my api", script=SLEEP, interpreter="none", exec_path=SLEEP, argv=(SLEEP, "1000"),
                      cwd="/tmp", cron_restart="@hourly", watch=("/tmp",))
REAL_CLUSTER = dataclasses.replace(REAL_FORK, name="web", exec_mode="cluster", instances=3, port="127.0.0.1:3999",
                                   cron_restart=None, watch=())


def _export_real(tmp_path: Path, user: bool) -> Path:
    ctx = _context(tmp_path, user)
    _register(ctx, REAL_FORK, REAL_CLUSTER)
    out = tmp_path / "out"
    export_units(ctx, str(out))
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("user", [False, True])
def test_systemd_analyze_verify_accepts_the_files(tmp_path: Path, user: bool) -> None:
    out = _export_real(tmp_path, user)
    units = sorted(str(path) for path in out.iterdir() if path.suffix in (".service", ".socket", ".target", ".timer"))
    command = ["systemd-analyze", "verify", "--man=no", *(["--user"] if user else []), *units]
    runtime = tmp_path / "runtime"  # user mode: systemd-analyze looks the user's runtime directory up
    runtime.mkdir(mode=0o700)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings (exit status 0): none may name an exported file.
    problems = [line for line in result.stderr.splitlines() if str(out) in line]
    assert not problems, result.stderr


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="needs systemctl")
def test_systemctl_enable_pulls_every_instance_and_the_cron_timer(tmp_path: Path) -> None:
    """`systemctl --root` enables units in a directory tree, talking to no manager: the symlinks it makes are
    what a boot would start. The escaped name checks Also= (which unescapes) and WantedBy= (which does not)."""
    out = _export_real(tmp_path, user=False)
    root = tmp_path / "root"
    unit_dir = root / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True)
    for path in out.iterdir():
        if path.is_file() and path.suffix != ".txt":
            shutil.copy(path, unit_dir)
    for unit in ("pmsd-my\\x20api.service", "pmsd-web.target", "pmsd-web@3.service"):
        result = subprocess.run(["systemctl", f"--root={root}", "enable", unit], capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert "ignoring" not in result.stderr, result.stderr
    links = sorted(str(path.relative_to(unit_dir)) for path in unit_dir.rglob("*") if path.is_symlink())
    assert links == ["multi-user.target.wants/pmsd-my\\x20api.service", "multi-user.target.wants/pmsd-web.target",
                     "pmsd-web.target.wants/pmsd-web@3.service", "timers.target.wants/pmsd.cron-my\\x20api.timer"]
