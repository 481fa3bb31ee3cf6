"""PM2's startOrRestart, startOrReload and startOrGracefulReload: an ecosystem file's apps that do not exist
are started; those that do are restarted or reloaded with the file's environment.

As PM2 (API._startJson), an existing app takes the file's `env` (and `env_<name>` with --env) and the current
environment, as `--update-env` does; its other options stay as they were (a restart through `pmsd start
<file>` redefines the whole app, which is what startOrRestart does here too). startOrReload is
`pmsd.api.lifecycle.reload` of the file.
"""

from __future__ import annotations

import os

from pmsd.api import lifecycle
from pmsd.api.lifecycle import Outcome, StartOptions
from pmsd.context import Context
from pmsd.definition.build import build_spec
from pmsd.definition.ecosystem import is_ecosystem_file, load_apps
from pmsd.errors import NotFoundError, UsageError
from pmsd.model.spec import AppSpec, Source

ACTIONS = ("restart", "reload")


def start_or(ctx: Context, path: str, action: str, options: StartOptions | None = None) -> list[Outcome]:
    """Start the file's apps that do not exist; `action` ("restart" or "reload") the ones that do."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
    options = options or StartOptions()
    if not is_ecosystem_file(path):
        raise UsageError(f"{path} is not an ecosystem file", "give a .config.js/.cjs/.mjs, .json, .yaml or .toml "
                         "file; to start one script, use `pmsd start`")
    if not os.path.isfile(path):
        raise NotFoundError(f"ecosystem file not found: {path}")
    _specs(ctx, path, options)  # the file and --only checked before anything happens
    if action == "restart":
        # `pmsd start <file>` already restarts declared apps that exist, with the file's definition.
        return lifecycle.start(ctx, path, options)
    # `pmsd reload <file>` is PM2's `_startJson` with reloadProcessId: new apps start, existing ones take the
    # file's env and reload.
    return lifecycle.reload(ctx, path, update_env=options.update_env, only=options.only,
                            env_name=options.env_name, overrides=options.overrides)


def _specs(ctx: Context, path: str, options: StartOptions) -> list[AppSpec]:
    """The file's apps (those --only names), validated; warnings are left for the start that follows."""
    source = Source(os.path.relpath(path), os.path.dirname(os.path.abspath(path)))
    specs = [build_spec({**raw, **options.overrides}, source, options.env_name, ctx.environ.get("PATH"), [])
             for raw in load_apps(path)]
    if options.only:
        missing = sorted(set(options.only) - {spec.name for spec in specs})
        if missing:
            raise NotFoundError(f"{source.label} has no app named {', '.join(missing)} (--only)")
        specs = [spec for spec in specs if spec.name in options.only]
    return specs
