"""Print how many of PM2's commands and global options pmsd has, per class (tests/pm2/cli_surface.py).

    python3 tests/pm2/surface_counts.py               # the table's counts
    python3 tests/pm2/surface_counts.py --probe DIR   # the table measured against the pmsd source tree DIR

--probe runs `python3 -m pmsd <command> --help` from DIR (PYTHONPATH=DIR) for every row, with no systemd
reachable: a row keeps its class only if that CLI takes it the way the class says (the command's help, the
one-line redirect, the flag in the command's help and not marked as ignored or not honoured); otherwise it
counts as missing. That measures an older tree (a git worktree) the same way as the current one.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.pm2.cli_surface import CATCH_ALL, COMMANDS, OPTIONS, Command, Option, Surface

UNHONOURED = re.compile(r"Not honoured|Ignored", re.IGNORECASE)


def counts(classes: Iterable[Surface]) -> str:
    tally = collections.Counter(classes)
    return ", ".join(f"{surface} {tally[surface]}" for surface in Surface) + f" (of {sum(tally.values())})"


class Probe:
    """pmsd's CLI from one source tree, asked only for help (and an unknown command)."""

    def __init__(self, tree: str, scratch: str) -> None:
        self.env = {**os.environ, "PYTHONPATH": tree, "COLUMNS": "250", "NO_COLOR": "1", "PMSD_NO_GOD": "1",
                    "PMSD_STATE_DIR": os.path.join(scratch, "state"), "XDG_RUNTIME_DIR": scratch,
                    "DBUS_SESSION_BUS_ADDRESS": f"unix:path={scratch}/no-bus"}
        self.scratch = scratch
        self.helps: dict[str, str | None] = {}

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pmsd", *argv], capture_output=True, text=True,
                              env=self.env, cwd=self.scratch, timeout=60)

    def command(self, row: Command) -> Surface:
        if row.names == (CATCH_ALL,):
            return row.surface if self.run("no-such-command").returncode == 2 else Surface.MISSING
        for name in row.names:
            result = self.run(name, "--help")
            text = result.stdout + result.stderr
            redirect = text.count("\n") == 1 and text.startswith(f"[pmsd] `pm2 {name}` is not part of pmsd")
            helped = result.returncode == 0 and f"pmsd {name} [OPTIONS]" in " ".join(result.stdout.split())
            if not (redirect if row.surface is Surface.ELSEWHERE else helped):
                return Surface.MISSING
        return row.surface

    def help(self, command: str) -> str | None:
        if command not in self.helps:
            result = self.run(*([command] if command else []), "--help")
            self.helps[command] = result.stdout if result.returncode == 0 else None
        return self.helps[command]

    def option(self, row: Option) -> Surface:
        text = self.help(row.command)
        if row.surface is Surface.MISSING or not row.flags or text is None:
            return Surface.MISSING
        for flag in row.flags:
            lines = [line for line in text.splitlines() if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", line)]
            if not lines:
                return Surface.MISSING
            if row.surface is not Surface.ELSEWHERE and any(UNHONOURED.search(line) for line in lines):
                return Surface.MISSING
        return row.surface


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--probe", metavar="DIR", help="measure the table against pmsd's source tree DIR")
    tree = parser.parse_args().probe
    print(f"table    commands: {counts(row.surface for row in COMMANDS)}")
    print(f"table    options:  {counts(row.surface for row in OPTIONS)}")
    if tree is None:
        return 0
    with tempfile.TemporaryDirectory(prefix="pmsd-surface-") as scratch:
        probe = Probe(os.path.abspath(tree), scratch)
        commands = [(row, probe.command(row)) for row in COMMANDS]
        options = [(row, probe.option(row)) for row in OPTIONS]
    print(f"measured commands: {counts(measured for _, measured in commands)}  [{tree}]")
    print(f"measured options:  {counts(measured for _, measured in options)}  [{tree}]")
    measurements: list[tuple[Command | Option, Surface]] = [*commands, *options]
    for row, measured in measurements:
        if measured is not row.surface:
            print(f"  {'|'.join(row.names)}: table {row.surface}, measured {measured}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
