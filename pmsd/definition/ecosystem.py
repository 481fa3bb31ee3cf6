"""Read ecosystem files: JSON, YAML, TOML and ecosystem.config.js/.cjs/.mjs (evaluated by node).

A file holds `{apps: [...]}`, a single app, or a bare list of apps. This module only turns a file into raw
app mappings, saying where it is broken; `pmsd.model.spec` validates each app against the settings table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping

from pmsd.errors import UsageError

DATA_SUFFIXES = (".json", ".yaml", ".yml", ".toml")
JS_SUFFIXES = (".config.js", ".config.cjs", ".config.mjs")

# node prints the evaluated module as JSON. The path goes in argv, never into the code.
_NODE_LOADER = r"""
const path = require('path');
const file = path.resolve(process.argv[1]);
const dump = (mod) => {
  const value = (mod && mod.default !== undefined && mod.apps === undefined) ? mod.default : mod;
  process.stdout.write(JSON.stringify(value === undefined ? null : value));
};
if (file.endsWith('.mjs')) {
  const fail = (e) => { console.error(e.stack || String(e)); process.exit(3); };
  import(require('url').pathToFileURL(file).href).then(dump, fail);
} else {
  try { dump(require(file)); } catch (e) { console.error(e.stack || String(e)); process.exit(3); }
}
"""


def is_ecosystem_file(target: str) -> bool:
    lower = target.lower()
    return lower.endswith(DATA_SUFFIXES) or lower.endswith(JS_SUFFIXES)


def load_apps(path: str) -> list[Mapping[str, object]]:
    """Raw app mappings from an ecosystem file; UsageError naming the file (and line) when it is broken."""
    label = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise UsageError(f"ecosystem file not found: {path}") from None
    except OSError as error:
        raise UsageError(f"cannot read ecosystem file {path}: {error.strerror}") from None
    document = _parse(path, label, data)
    return _apps_of(document, label)


def _parse(path: str, label: str, data: bytes) -> object:
    lower = path.lower()
    if lower.endswith(".json"):
        try:
            return json.loads(data)
        except json.JSONDecodeError as error:
            raise UsageError(f"{label}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}") from None
        except UnicodeDecodeError:
            raise UsageError(f"{label}: not UTF-8 text") from None
    if lower.endswith((".yaml", ".yml")):
        import yaml  # lazy: ~25 ms, only for YAML files

        try:
            return yaml.safe_load(data)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark
            where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
            raise UsageError(f"{label}{where}: invalid YAML: {error.problem}") from None
        except yaml.YAMLError as error:
            raise UsageError(f"{label}: invalid YAML: {error}") from None
    if lower.endswith(".toml"):
        import tomllib  # lazy: only for TOML files

        try:
            return tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise UsageError(f"{label}: invalid TOML: {error}") from None
    return _evaluate_js(path, label)


def _evaluate_js(path: str, label: str) -> object:
    node = shutil.which("node")
    if node is None:
        raise UsageError(
            f"{label} is JavaScript, and evaluating it needs node, which is not on PATH",
            "install Node.js (apt-get install nodejs), or write the ecosystem as JSON, YAML or TOML",
        )
    try:
        result = subprocess.run(
            [node, "-e", _NODE_LOADER, os.path.abspath(path)], capture_output=True, text=True, timeout=30,
            cwd=os.path.dirname(os.path.abspath(path)),
        )
    except subprocess.TimeoutExpired:
        raise UsageError(f"{label}: node did not finish evaluating it within 30 s") from None
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        shown = "\n    ".join(detail[:6]) if detail else f"node exited with status {result.returncode}"
        raise UsageError(f"{label}: evaluating it with node failed:\n    {shown}")
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        raise UsageError(f"{label}: its module.exports could not be turned into JSON") from None


def _apps_of(document: object, label: str) -> list[Mapping[str, object]]:
    if isinstance(document, Mapping) and "apps" in document:
        apps = document["apps"]
        if not isinstance(apps, list):
            raise UsageError(f"{label}: 'apps' must be a list of apps")
    elif isinstance(document, Mapping):
        apps = [document]
    elif isinstance(document, list):
        apps = document
    else:
        raise UsageError(f"{label}: expected {{apps: [...]}}, an app, or a list of apps")
    if not apps:
        raise UsageError(f"{label}: declares no apps")
    for index, app in enumerate(apps):
        if not isinstance(app, Mapping):
            raise UsageError(f"{label}: app #{index + 1} is not a mapping of options")
    return apps
