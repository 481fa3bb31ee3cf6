"""Read ecosystem files: JSON, YAML, TOML and ecosystem.config.js/.cjs/.mjs (evaluated by node).

A file holds `{apps: [...]}` (or PM2's older `{pm2: [...]}`), a single app, or a bare list of apps. This module
only turns a file into raw app mappings, saying where it is broken; `pmsd.definition.build` validates each app
against the settings table. A `.json` file is JSON, or else what PM2 makes of it: a JavaScript expression
(comments, unquoted keys, `process.env.X`), which node evaluates.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pmsd.errors import UsageError

if TYPE_CHECKING:
    import subprocess

DATA_SUFFIXES = (".json", ".yaml", ".yml", ".toml")
# The key under which each raw app carries its file's `deploy` section's envs ({env name: env}), for
# `--env <name>` (pmsd.definition.build). No ecosystem key is spelled like it.
DEPLOY_ENV = "(deploy env)"
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


# PM2 (lib/Common.js, parseConfig) evaluates a .json file as the JavaScript expression "(<text>)" in node's vm.
# runInThisContext, as PM2 does, so that process.env reads work; the path goes in argv, never into the code. An
# error prints {"line", "message"} as JSON on stderr: the line in the file (the stack names the file there).
_NODE_JSON_LOADER = r"""
const fs = require('fs'), path = require('path'), vm = require('vm');
const file = path.resolve(process.argv[1]);
try {
  const value = vm.runInThisContext('(' + fs.readFileSync(file, 'utf8') + '\n)',
                                    {filename: file, displayErrors: false, timeout: 10000});
  process.stdout.write(JSON.stringify(value === undefined ? null : value));
} catch (e) {
  const stack = String((e && e.stack) || e);
  const at = stack.split(file + ':')[1];
  const line = at ? parseInt(at, 10) : null;
  console.error(JSON.stringify({line: line, message: (e && e.name ? e.name + ': ' + e.message : String(e))}));
  process.exit(3);
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
            return _evaluate_json_as_js(path, label, error)
        except UnicodeDecodeError:
            raise UsageError(f"{label}: not UTF-8 text") from None
        except (ValueError, RecursionError) as error:
            raise unreadable(label, "JSON", error) from None
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
        except Exception as error:  # PyYAML's constructors raise whatever Python raises on a tagged value they
            # cannot make: ValueError for `!!int x`, AttributeError for `!!timestamp x`, RecursionError, ...
            raise unreadable(label, "YAML", error) from None
    if lower.endswith(".toml"):
        import tomllib  # lazy: only for TOML files

        try:
            return tomllib.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as error:  # TOMLDecodeError and UnicodeDecodeError among them
            raise unreadable(label, "TOML", error) from None
    return _evaluate_js(path, label)


def unreadable(label: str, form: str, error: Exception) -> UsageError:
    """The error for a document Python's parsers give up on where JavaScript's would not: an integer of more
    digits than int() reads (sys.get_int_max_str_digits(), 4300), nesting past the recursion limit."""
    if isinstance(error, RecursionError):
        return UsageError(f"{label}: invalid {form}: nested too deeply", f"nest values at most {MAX_DEPTH} deep")
    if str(error).startswith("Exceeds the limit"):
        return UsageError(f"{label}: invalid {form}: a number has more than {sys.get_int_max_str_digits()} digits",
                          "write it as a string, or shorter")
    return UsageError(f"{label}: invalid {form}: {error}")


def _evaluate_json_as_js(path: str, label: str, error: json.JSONDecodeError) -> object:
    """A .json file that is not JSON, read as PM2 reads it: a JavaScript expression, evaluated by node."""
    where = f"{label}:{error.lineno}:{error.colno}"
    if shutil.which("node") is None:
        raise UsageError(f"{where}: invalid JSON: {error.msg}",
                         "PM2 reads a .json file as JavaScript (comments, unquoted keys); pmsd does too when node "
                         "is installed (apt-get install nodejs), or write strict JSON")
    result = _run_node(_NODE_JSON_LOADER, path, label)
    if result.returncode != 0:
        try:
            report = json.loads(result.stderr.strip().splitlines()[-1])
            line, message = report["line"], str(report["message"])
        except (ValueError, IndexError, KeyError, TypeError):
            raise UsageError(f"{where}: invalid JSON: {error.msg}") from None
        at = f"{label}:{line}" if isinstance(line, int) else label
        raise UsageError(f"{at}: neither JSON nor a JavaScript expression (as PM2 reads .json files): {message}")
    return _node_output(result.stdout, label)


def _run_node(loader: str, path: str, label: str) -> subprocess.CompletedProcess[str]:
    import subprocess  # lazy: ~3 ms, and `pmsd ls` reaches this module (is_ecosystem_file) without ever running node

    node = shutil.which("node")
    if node is None:
        raise UsageError(
            f"{label} is JavaScript, and evaluating it needs node, which is not on PATH",
            "install Node.js (apt-get install nodejs), or write the ecosystem as JSON, YAML or TOML",
        )
    try:
        return subprocess.run(
            [node, "-e", loader, os.path.abspath(path)], capture_output=True, text=True, timeout=30,
            cwd=os.path.dirname(os.path.abspath(path)),
        )
    except subprocess.TimeoutExpired:
        raise UsageError(f"{label}: node did not finish evaluating it within 30 s") from None


def _node_output(stdout: str, label: str) -> object:
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        raise UsageError(f"{label}: its value could not be turned into JSON") from None
    except (ValueError, RecursionError) as error:
        raise unreadable(label, "JSON", error) from None


def _evaluate_js(path: str, label: str) -> object:
    result = _run_node(_NODE_LOADER, path, label)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        shown = "\n    ".join(detail[:6]) if detail else f"node exited with status {result.returncode}"
        raise UsageError(f"{label}: evaluating it with node failed:\n    {shown}")
    return _node_output(result.stdout, label)


def _apps_of(document: object, label: str) -> list[Mapping[str, object]]:
    """The raw apps of a document: `apps` (PM2 also reads `pm2` when there is no `apps`), one app, or a list.
    Each app carries the document's `deploy` envs (DEPLOY_ENV) when it has any."""
    check_document(document, label)
    key = next((key for key in ("apps", "pm2") if isinstance(document, Mapping) and key in document), None)
    apps: list[object]
    if isinstance(document, Mapping) and key is not None:
        listed: object = document[key]
        if isinstance(listed, Mapping):
            listed = [listed]  # PM2 takes one app there too
        if not isinstance(listed, list):
            raise UsageError(f"{label}: '{key}' must be a list of apps")
        apps = _with_deploy_envs(listed, document.get("deploy"), label)
    elif isinstance(document, Mapping):
        apps = [document]
    elif isinstance(document, list):
        apps = document
    else:
        raise UsageError(f"{label}: expected {{apps: [...]}}, an app, or a list of apps")
    if not apps:
        raise UsageError(f"{label}: declares no apps")
    checked: list[Mapping[str, object]] = []
    for index, app in enumerate(apps):
        if not isinstance(app, Mapping):
            raise UsageError(f"{label}: app #{index + 1} is not a mapping of options")
        checked.append(app)
    return checked


def _with_deploy_envs(apps: list[object], deploy: object, label: str) -> list[object]:
    """PM2 merges `deploy.<env>.env` into every app's env under `--env <env>` (lib/API.js, _startJson)."""
    if deploy is None:
        return apps
    if not isinstance(deploy, Mapping):
        raise UsageError(f"{label}: 'deploy' must be a mapping of environment names to their settings")
    envs = {name: target["env"] for name, target in deploy.items()
            if isinstance(target, Mapping) and target.get("env") is not None}
    if not envs:
        return apps
    return [{**app, DEPLOY_ENV: envs} if isinstance(app, Mapping) else app for app in apps]


MAX_DEPTH = 100  # values nested deeper are refused: pmsd walks them recursively (env values: PM2's JSON text)
MAX_VALUES = 1_000_000  # ... and a document that holds more values (counting each use of a YAML alias)


def check_document(document: object, label: str) -> None:
    """Refuse a document pmsd could not walk: nested deeper than MAX_DEPTH (a YAML alias inside its own value,
    `&a [*a]`, is infinitely deep), or holding more than MAX_VALUES values, which YAML aliases of aliases reach
    with a few lines ("billion laughs"). Walked without recursion."""
    pending = [(document, 1)]
    count = 0
    while pending:
        value, depth = pending.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise UsageError(f"{label}: values are nested deeper than {MAX_DEPTH} levels",
                             "flatten them (a YAML alias must not be used inside its own value)")
        if count > MAX_VALUES:
            raise UsageError(f"{label}: holds more than {MAX_VALUES} values (YAML aliases count each time they "
                             "are used)", "write fewer, or fewer uses of aliases")
        if isinstance(value, Mapping):
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
