"""The README's two commands on a stock Debian 12 and a stock Debian 13, booted (systemd as PID 1), as root, with
nothing of pmsd's installed first: minbase, systemd, D-Bus, logind and the distro's own /usr/bin/python3 (no pip,
PEP 668 "externally managed"). The machine uses the host's network; apt and pip download what the commands
install. The tree is copied in as a user would clone it.

`bash examples/demo.sh` runs in CI for both releases; `bash tests/run.sh` (the whole suite, inside: a few
minutes more per release) runs with PMSD_TEST_README_SUITE=1.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.system.conftest import Machine, booted

pytestmark = pytest.mark.system

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKOUT = "/root/pmsd"


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def stock(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    suite: str = request.param
    archive = str(tmp_path_factory.mktemp("checkout") / "pmsd.tar")
    # The files git knows, as a clone has them (uncommitted changes included: what is being tested).
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.split(b"\0")
    present = b"\0".join(f for f in files if f and os.path.exists(os.path.join(ROOT, os.fsdecode(f))))
    subprocess.run(["tar", "--null", "--no-recursion", "-T", "-", "-cf", archive], cwd=ROOT, input=present,
                   check=True)
    with booted(f"pytest-{os.getpid()}-stock-{suite}", suite=suite, install="stock") as machine:
        machine.push(archive, "/root/pmsd.tar")
        machine.run("sh", "-c", f"mkdir -p {CHECKOUT} && tar -C {CHECKOUT} -xf /root/pmsd.tar && rm /root/pmsd.tar")
        yield machine


def test_the_first_command_installs_pmsd_and_runs_the_example(stock: Machine) -> None:
    assert stock.run("python3", "-m", "pip", "--version", check=False).returncode != 0  # no pip: stock
    result = stock.run("bash", "examples/demo.sh", cwd=CHECKOUT, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "hello-web" in result.stdout and "ticker" in result.stdout and "online" in result.stdout
    # PEP 668's answer: a venv the command made itself, of the distro's python3.
    stock.run("test", "-x", f"{CHECKOUT}/.venv/bin/pmsd")
    # Idempotent: a second run installs nothing new and restarts the example's apps.
    again = stock.run("bash", "examples/demo.sh", cwd=CHECKOUT, timeout=600, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "apt-get install" not in again.stderr and "creating the venv" not in again.stderr
    stock.run(f"{CHECKOUT}/.venv/bin/pmsd", "delete", "all", env={"XDG_RUNTIME_DIR": "/run/user/0"})


@pytest.mark.skipif(os.environ.get("PMSD_TEST_README_SUITE") != "1",
                    reason="the whole suite inside takes minutes per release: PMSD_TEST_README_SUITE=1")
def test_the_second_command_runs_the_whole_suite(stock: Machine) -> None:
    result = stock.run("bash", "tests/run.sh", "-p", "no:cacheprovider", cwd=CHECKOUT, timeout=2400, check=False)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    print(f"{stock.name}: {summary}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
