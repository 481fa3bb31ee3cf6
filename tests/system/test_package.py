"""The Debian package on a booted Debian 12 (systemd 252, Python 3.11, typer 0.7, pystemd 0.11) and a booted
Debian 13 (systemd 257, Python 3.13, typer 0.15, pystemd 0.13): built from this tree by
packaging/build-deb.sh, installed with apt from the local file (offline: the machines hold only Debian's own
packages), then used as root and as a lingering user, the end-to-end suite run against it, upgraded with
running gods and apps, removed and purged.

The tests of one release share its machine and run in order: install, use, end-to-end suite, upgrade, removal.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.system.conftest import Machine, booted

pytestmark = pytest.mark.system

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUITES = {"bookworm": 252, "trixie": 257}  # Debian release: the systemd major version it ships
UPGRADE_VERSION = "0.1.0+upgrade1"
USER = "alice"


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The package built from this working tree (build dependencies installed by the script)."""
    out = tmp_path_factory.mktemp("deb")
    result = subprocess.run(["bash", os.path.join(ROOT, "packaging", "build-deb.sh")], capture_output=True,
                            text=True, timeout=1200, env={**os.environ, "DEST": str(out), "LINTIAN": "0"})
    assert result.returncode == 0, result.stderr[-4000:]
    path = result.stdout.strip().splitlines()[-1]
    assert os.path.isfile(path), result.stdout
    return path


@pytest.fixture(scope="session")
def upgrade_deb(deb: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same package as a later version whose code says so (pmsd.__version__), as a real upgrade would."""
    work = tmp_path_factory.mktemp("repack")
    tree = str(work / "tree")
    subprocess.run(["dpkg-deb", "-R", deb, tree], check=True)
    control = os.path.join(tree, "DEBIAN", "control")
    with open(control, encoding="utf-8") as file:
        text = re.sub(r"^Version: .*$", f"Version: {UPGRADE_VERSION}", file.read(), flags=re.MULTILINE)
    with open(control, "w", encoding="utf-8") as file:
        file.write(text)
    init = os.path.join(tree, "usr", "lib", "python3", "dist-packages", "pmsd", "__init__.py")
    with open(init, encoding="utf-8") as file:
        text = re.sub(r'^__version__ = .*$', f'__version__ = "{UPGRADE_VERSION}"', file.read(), flags=re.MULTILINE)
    with open(init, "w", encoding="utf-8") as file:
        file.write(text)
    # md5sums must match the changed file, or dpkg --verify (and lintian) would flag it.
    files = sorted(os.path.relpath(os.path.join(d, f), tree) for d, _, fs in os.walk(tree) for f in fs
                   if not os.path.relpath(d, tree).startswith("DEBIAN"))
    sums = subprocess.run(["md5sum", *files], cwd=tree, check=True, capture_output=True, text=True).stdout
    with open(os.path.join(tree, "DEBIAN", "md5sums"), "w", encoding="utf-8") as file:
        file.write(sums)
    path = str(work / f"pmsd_{UPGRADE_VERSION}_all.deb")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", tree, path], check=True, capture_output=True)
    shutil.rmtree(tree)
    return path


@pytest.fixture(scope="module", params=list(SUITES))
def packaged(request: pytest.FixtureRequest, deb: str) -> Iterator[Machine]:
    """A booted machine of the release with the package installed by apt, from the local file."""
    suite: str = request.param
    with booted(f"pytest-{os.getpid()}-{suite}", suite=suite, install="package") as machine:
        machine.command = "/usr/bin/pmsd"
        machine.push(deb, "/root/pmsd.deb")
        install = machine.run("apt-get", "install", "-y", "--no-install-recommends", "/root/pmsd.deb",
                              env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=300, check=False)
        assert install.returncode == 0, install.stdout + install.stderr
        yield machine


@dataclass
class Apps:
    """An app of a lingering user's manager and one of the system manager, started from the package."""

    user_unit: str
    system_unit: str


def packaged_suite(machine: Machine) -> str:
    return machine.run("sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME").stdout.strip()


def main_pid(machine: Machine, unit: str, user: str | None = None) -> int:
    scope = ["--user"] if user else []
    return int(machine.run("systemctl", *scope, "show", "-P", "MainPID", unit, user=user).stdout)


def active(machine: Machine, unit: str, user: str | None = None) -> str:
    scope = ["--user"] if user else []
    return machine.run("systemctl", *scope, "is-active", unit, user=user, check=False).stdout.strip()


@pytest.fixture(scope="module")
def apps(packaged: Machine) -> Apps:
    packaged.add_user(USER)
    sleeper = os.path.join(packaged.apps, "sleeper.py")
    packaged.pmsd("start", sleeper, "--name", "web", user=USER)
    packaged.pmsd("start", sleeper, "--name", "jobs", system=True)
    return Apps(user_unit="pmsd-web.service", system_unit="pmsd-jobs.service")


def test_installing_puts_every_file_in_place_and_starts_nothing(packaged: Machine) -> None:
    assert packaged.run("head", "-n1", "/usr/bin/pmsd").stdout.strip() == "#!/usr/bin/python3"
    for path in ("/usr/lib/systemd/system/pmsd-god.service", "/usr/lib/systemd/user/pmsd-god.service",
                 "/usr/share/man/man1/pmsd.1.gz", "/usr/share/bash-completion/completions/pmsd",
                 "/usr/share/zsh/vendor-completions/_pmsd", "/usr/share/fish/vendor_completions.d/pmsd.fish"):
        packaged.run("test", "-f", path)
    assert packaged.run("systemctl", "is-enabled", "pmsd-god.service", check=False).stdout.strip() == "disabled"
    assert active(packaged, "pmsd-god.service") == "inactive"
    # The package's own idea of its dependencies is satisfied by the release's packages alone.
    packaged.run("dpkg", "--audit")
    version = packaged.run("systemctl", "--version").stdout.split()[1]
    assert int(version) == SUITES[packaged_suite(packaged)]


def test_apps_run_as_a_lingering_user_and_as_the_system_with_the_packaged_gods(packaged: Machine,
                                                                               apps: Apps) -> None:
    assert active(packaged, apps.user_unit, user=USER) == "active"
    assert active(packaged, apps.system_unit) == "active"
    for user, expected in ((USER, "/usr/lib/systemd/user/pmsd-god.service"),
                           (None, "/usr/lib/systemd/system/pmsd-god.service")):
        scope = ["--user"] if user else []
        shown = packaged.run("systemctl", *scope, "show", "-P", "FragmentPath", "pmsd-god.service",
                             user=user).stdout.strip()
        # Debian 12 names it by /lib (merged /usr: the same file), Debian 13 by /usr/lib.
        assert packaged.run("realpath", shown).stdout == packaged.run("realpath", expected).stdout
        assert active(packaged, "pmsd-god.service", user=user) == "active"
    listed = packaged.pmsd("jlist", user=USER).stdout
    assert '"name": "web"' in listed and '"status": "online"' in listed
    # A feature newer than 252, gated on the manager's Version: MemoryPeak (255). Debian 12 says why it has
    # none; Debian 13 reads it (a figure on cgroup v2 hosts; "-" where the memory controller is v1, as here).
    peak = next(line for line in packaged.pmsd("describe", "web", user=USER).stdout.splitlines()
                if line.strip().startswith("memory peak"))
    assert ("systemd 255 and later" in peak) is (SUITES[packaged_suite(packaged)] < 255), peak


def push_tests(packaged: Machine, tmp_path_factory: pytest.TempPathFactory) -> None:
    """This tree's tests/ and pyproject.toml into /opt/pmsd-src (no pmsd/: `import pmsd` is the package's)."""
    archive = str(tmp_path_factory.mktemp("src") / "tests.tar")
    with tarfile.open(archive, "w") as tar:
        tar.add(os.path.join(ROOT, "tests"), "tests", filter=lambda info: None if "__pycache__" in info.name
                else info)
        tar.add(os.path.join(ROOT, "pyproject.toml"), "pyproject.toml")
    packaged.push(archive, "/root/tests.tar")
    packaged.run("sh", "-c", "rm -rf /opt/pmsd-src && mkdir -p /opt/pmsd-src && tar -C /opt/pmsd-src -xf "
                 "/root/tests.tar")


def test_the_end_to_end_suite_passes_on_the_release(packaged: Machine, tmp_path_factory: pytest.TempPathFactory
                                                    ) -> None:
    """tests/e2e against the installed package: /usr/bin/python3 with the release's python3-* packages, the
    release's systemd and node. The copy holds tests/ and pyproject.toml only, so `python3 -m pmsd` (and every
    `import pmsd` in the tests) is the package's code."""
    push_tests(packaged, tmp_path_factory)
    # The reliability suite (faults at every step, the soak: ~8 minutes) runs once, against the host's manager
    # (.ci/run's own pass over tests/e2e); here the release's versions run everything else.
    result = packaged.run("python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "e2e and not reliability",
                          "tests/e2e", cwd="/opt/pmsd-src", timeout=1500, check=False)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    print(f"{packaged.name}: {summary}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_faults_in_system_mode_lose_no_app(packaged: Machine, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Issue 19's faults as root for the system manager, the app run as a lingering user (`--uid`): the CLI or
    the system god killed (-9) before each step of `start` and `delete` (tests/system/fault_driver.py)."""
    push_tests(packaged, tmp_path_factory)
    packaged.add_user(USER)
    result = packaged.run("python3", "-m", "tests.system.fault_driver", USER, packaged.apps, cwd="/opt/pmsd-src",
                          timeout=1200, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = json.loads(result.stdout.strip().splitlines()[-1])
    failures = []
    for operation, by_fault in table.items():
        for fault, tally in by_fault.items():
            print(f"{packaged.name}: system {operation} x {fault}: survived {tally['survived']} of {tally['steps']}")
            failures += [f"{operation} x {fault} {failure}" for failure in tally["failures"]]
    assert not failures, "\n".join(failures)


def test_an_upgrade_moves_every_god_onto_the_new_code_and_leaves_the_apps(packaged: Machine, apps: Apps,
                                                                          upgrade_deb: str) -> None:
    user_app, system_app = main_pid(packaged, apps.user_unit, USER), main_pid(packaged, apps.system_unit)
    user_god, system_god = main_pid(packaged, "pmsd-god.service", USER), main_pid(packaged, "pmsd-god.service")
    packaged.push(upgrade_deb, "/root/pmsd-upgrade.deb")
    packaged.run("apt-get", "install", "-y", "--no-install-recommends", "/root/pmsd-upgrade.deb",
                 env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=300)
    assert main_pid(packaged, apps.user_unit, USER) == user_app
    assert main_pid(packaged, apps.system_unit) == system_app
    assert main_pid(packaged, "pmsd-god.service", USER) not in (0, user_god)
    assert main_pid(packaged, "pmsd-god.service") not in (0, system_god)
    # god answers with the new code: ping reports the version it runs.
    assert f"pmsd {UPGRADE_VERSION}" in packaged.pmsd("ping", user=USER).stdout
    assert f"pmsd {UPGRADE_VERSION}" in packaged.pmsd("ping", system=True).stdout


def test_removal_stops_the_gods_not_the_apps_and_purge_keeps_the_definitions(packaged: Machine,
                                                                             apps: Apps) -> None:
    user_app, system_app = main_pid(packaged, apps.user_unit, USER), main_pid(packaged, apps.system_unit)
    packaged.run("apt-get", "remove", "-y", "pmsd", env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=300)
    assert active(packaged, "pmsd-god.service", user=USER) != "active"
    assert active(packaged, "pmsd-god.service") != "active"
    assert main_pid(packaged, apps.user_unit, USER) == user_app
    assert main_pid(packaged, apps.system_unit) == system_app
    packaged.run("apt-get", "purge", "-y", "pmsd", env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=300)
    assert packaged.run("dpkg-query", "-W", "pmsd", check=False).returncode != 0
    packaged.run("test", "-f", "/var/lib/pmsd/registry.json")
    packaged.run("test", "!", "-e", "/usr/bin/pmsd")
    # The apps are the admin's to stop now (the machine is powered off after this module anyway).
    packaged.run("systemctl", "stop", apps.system_unit)
    packaged.run("systemctl", "--user", "stop", apps.user_unit, user=USER)
