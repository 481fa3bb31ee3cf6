"""The app's view of itself under pmsd is what plain `node script.js` / `python3 script.py` from the app's
directory shows (issue 13): file name, main module, module search path, cwd, PWD, argv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e.helpers import Pmsd, wait_for

pytestmark = pytest.mark.e2e

NODE_VIEW = """\
const fs = require('fs');
fs.writeFileSync(process.env.VIEW_FILE, JSON.stringify({
  filename: __filename, paths: module.paths, main: require.main === module, cwd: process.cwd(),
  pwd: process.env.PWD, argv: process.argv.slice(1), cache: Object.keys(require.cache),
}));
if (process.env.STAY) setInterval(() => {}, 1000);
"""
PYTHON_VIEW = """\
import json, os, sys, time
with open(os.environ["VIEW_FILE"], "w") as handle:
    json.dump({"file": __file__, "name": __name__, "cwd": os.getcwd(), "pwd": os.environ.get("PWD"),
               "argv": sys.argv, "path0": sys.path[0]}, handle)
while os.environ.get("STAY"):
    time.sleep(3600)
"""
CASES = [
    pytest.param("node", "view.js", NODE_VIEW, id="node",
                 marks=pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")),
    pytest.param(sys.executable, "view.py", PYTHON_VIEW, id="python"),
]


def _read(path: str) -> dict[str, Any]:
    def written() -> dict[str, Any] | None:
        try:
            with open(path) as handle:
                view: dict[str, Any] = json.load(handle)
                return view
        except (OSError, ValueError):
            return None  # not yet, or half written

    return wait_for(written, 15, f"{path} to be written")


@pytest.mark.parametrize(("interpreter", "script", "code"), CASES)
def test_app_sees_itself_as_under_the_plain_interpreter(pmsd: Pmsd, token: str, interpreter: str, script: str,
                                                        code: str) -> None:
    app_dir = os.path.join(pmsd.cwd, f"app-{token}")
    os.makedirs(app_dir)
    with open(os.path.join(app_dir, script), "w", encoding="utf-8") as handle:
        handle.write(code)
    plain_file, pmsd_file = (os.path.join(pmsd.cwd, f"{kind}-{token}.json") for kind in ("plain", "pmsd"))
    # The script by its absolute path, as pmsd (and PM2) give it: python's argv[0] is what it was given.
    subprocess.run([interpreter, os.path.join(app_dir, script)], cwd=app_dir, check=True, timeout=30,
                   env={"PATH": os.environ["PATH"], "PWD": app_dir, "VIEW_FILE": plain_file})
    ecosystem = os.path.join(pmsd.cwd, f"view-{token}.json")
    with open(ecosystem, "w", encoding="utf-8") as handle:
        json.dump({"apps": [{"name": f"view-{token}", "script": script, "cwd": app_dir,
                             "interpreter": interpreter, "env": {"VIEW_FILE": pmsd_file, "STAY": "1"}}]}, handle)
    pmsd.run("start", ecosystem)
    assert _read(pmsd_file) == _read(plain_file)
