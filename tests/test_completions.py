"""The shell completions packaging/make-completions.py writes from the CLI's command tree (fast, no systemd).

Completion is checked for real in bash: the script is sourced and its function called with COMP_WORDS set, as
bash does on Tab. App names come from a stand-in `pmsd` on PATH, so no test reaches a systemd manager.
zsh and fish are syntax-checked when installed.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import click
import pytest
import typer.main

from pmsd.cli.app import app
from tests.test_packaging import built_deb, deb_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JLIST = '[{"name": "api", "pm2_env": {"name": "api"}}, {"name": "worker"}]'
# A stand-in for pmsd: its jlist, and another list with --system (to see the scope passed on).
FAKE_PMSD = f"""#!/bin/sh
[ "$1" = --system ] && {{ echo '[{{"name": "root-app"}}]'; exit 0; }}
[ "$1" = jlist ] && {{ echo '{JLIST}'; exit 0; }}
exit 2
"""
FAILING_PMSD = "#!/bin/sh\necho 'pmsd: cannot reach god' >&2\nexit 3\n"


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("completions")
    subprocess.run([sys.executable, os.path.join(ROOT, "packaging", "make-completions.py"), str(out)], check=True,
                   env={**os.environ, "PYTHONPATH": ROOT}, timeout=120)
    return out


def visible_commands() -> list[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    ctx = click.Context(group, info_name="pmsd")
    names = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None and not command.hidden:
            names.append(name)
    return names


def complete_bash(scripts: pathlib.Path, tmp_path: pathlib.Path, words: list[str], pmsd: str | None = None
                  ) -> tuple[list[str], str]:
    """What bash offers for the command line `words` (the last one is being completed), and what it printed
    on stderr. tmp_path is the working directory, empty, so that no file name is offered by accident."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if pmsd is not None:
        (bin_dir / "pmsd").write_text(pmsd)
        (bin_dir / "pmsd").chmod(0o755)
    work = tmp_path / "cwd"
    work.mkdir(exist_ok=True)
    program = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _pmsd; '
               'printf "%s\\n" "${COMPREPLY[@]}"')
    result = subprocess.run(["bash", "-c", program, "bash", str(scripts / "pmsd"), *words], cwd=work,
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, capture_output=True,
                            text=True, check=True, timeout=60)
    return [line for line in result.stdout.splitlines() if line], result.stderr


def test_every_visible_command_is_in_every_script(scripts: pathlib.Path) -> None:
    commands = visible_commands()
    assert {"start", "restart", "logs"} <= set(commands)
    for name in ("pmsd", "_pmsd", "pmsd.fish"):
        text = (scripts / name).read_text()
        missing = [command for command in commands if command not in text]
        assert not missing, f"{name} lacks {missing}"


def test_bash_syntax(scripts: pathlib.Path) -> None:
    subprocess.run(["bash", "-n", str(scripts / "pmsd")], check=True, timeout=60)


@pytest.mark.parametrize(("shell", "name", "check"), [("zsh", "_pmsd", "-n"), ("fish", "pmsd.fish", "--no-execute")])
def test_zsh_and_fish_syntax(scripts: pathlib.Path, shell: str, name: str, check: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    result = subprocess.run([shell, check, str(scripts / name)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_bash_completes_command_names(scripts: pathlib.Path, tmp_path: pathlib.Path) -> None:
    expected = {"restart", "resurrect", "reset"} & set(visible_commands())
    assert expected
    offered, stderr = complete_bash(scripts, tmp_path, ["pmsd", "res"])
    assert expected <= set(offered)
    assert all(word.startswith("res") for word in offered)
    assert stderr == ""


def test_bash_completes_start_options(scripts: pathlib.Path, tmp_path: pathlib.Path) -> None:
    offered, _ = complete_bash(scripts, tmp_path, ["pmsd", "start", "--"])
    assert {"--name", "--instances", "--help"} <= set(offered)
    offered, _ = complete_bash(scripts, tmp_path, ["pmsd", "--"])
    assert {"--system", "--user", "--version", "--help"} <= set(offered)


def test_bash_completes_app_names_from_jlist(scripts: pathlib.Path, tmp_path: pathlib.Path) -> None:
    offered, stderr = complete_bash(scripts, tmp_path, ["pmsd", "restart", ""], FAKE_PMSD)
    assert sorted(offered) == ["all", "api", "worker"]
    assert stderr == ""
    # every target after the first, and after an option's value
    offered, _ = complete_bash(scripts, tmp_path, ["pmsd", "stop", "api", "--silent", "w"], FAKE_PMSD)
    assert offered == ["worker"]
    offered, _ = complete_bash(scripts, tmp_path, ["pmsd", "--system", "logs", ""], FAKE_PMSD)
    assert sorted(offered) == ["all", "root-app"]
    # an option's value is not an app; sendSignal's first argument is a signal, then apps
    offered, _ = complete_bash(scripts, tmp_path, ["pmsd", "restart", "--name", ""], FAKE_PMSD)
    assert offered == []
    offered, _ = complete_bash(scripts, tmp_path, ["pmsd", "sendSignal", "SIGUSR"], FAKE_PMSD)
    assert offered == ["SIGUSR1", "SIGUSR2"]
    offered, _ = complete_bash(scripts, tmp_path, ["pmsd", "sendSignal", "SIGUSR2", "a"], FAKE_PMSD)
    assert sorted(offered) == ["all", "api"]


def test_bash_completion_is_quiet_when_pmsd_fails(scripts: pathlib.Path, tmp_path: pathlib.Path) -> None:
    offered, stderr = complete_bash(scripts, tmp_path, ["pmsd", "describe", ""], FAILING_PMSD)
    assert (offered, stderr) == (["all"], "")


def test_deb_ships_the_completions() -> None:
    files = deb_files(built_deb())
    for path in ("usr/share/bash-completion/completions/pmsd", "usr/share/zsh/vendor-completions/_pmsd",
                 "usr/share/fish/vendor_completions.d/pmsd.fish"):
        content = files.get(path)
        assert content is not None and b"Generated by packaging/make-completions.py" in content, path
