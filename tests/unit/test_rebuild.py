"""Relisting apps from systemd's units: what an ExecStart= says about the program."""

from __future__ import annotations

import pytest

from pmsd.state.rebuild import _program


@pytest.mark.parametrize(("path", "argv", "expected"), [
    ("/usr/bin/python3", ["/usr/bin/python3", "/srv/a.py", "-v"], ("/usr/bin/python3", "/srv/a.py", ("-v",))),
    ("/usr/bin/python3.11", ["/usr/bin/python3.11", "-u", "/srv/a.py"], ("/usr/bin/python3.11", "/srv/a.py", ())),
    ("/usr/bin/node", ["/usr/bin/node", "--require", "/x/node.js", "--max-old-space-size=99", "/srv/s.js", "a"],
     ("/usr/bin/node", "/srv/s.js", ("a",))),
    ("/srv/tool", ["/srv/tool", "--port", "1"], ("none", "/srv/tool", ("--port", "1"))),
    ("/usr/bin/bash", ["/usr/bin/bash", "-c", "npm run dev"], ("/usr/bin/bash", "npm run dev", ())),
])
def test_program_of_an_exec_start(path: str, argv: list[str], expected: tuple[str, str, tuple[str, ...]]) -> None:
    assert _program(path, argv) == expected
