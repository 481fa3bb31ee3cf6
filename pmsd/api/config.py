"""`pmsd set`, `pmsd get`, `pmsd unset`: pmsd's global settings (pmsd.definition.config).

A change is saved under the registry's lock, with the registry: god, which rereads the settings whenever the
registry changes, applies new rotation settings to the files it writes at once, without restarting any app.
"""

from __future__ import annotations

import os
import pwd
from typing import Any

from pmsd.context import Context
from pmsd.definition.config import CONFIG_KEYS, config_key, config_value, parse_config_value, with_pm2_log_paths
from pmsd.model.spec import AppSpec
from pmsd.state.config import read_config, write_config


def set_config(ctx: Context, key: str, raw: str) -> tuple[str, Any]:
    """Store the setting; (its own key, the value stored)."""
    name, value = parse_config_value(key, raw)
    with ctx.registry.transaction():
        config = read_config(ctx.state_dir)
        config[name] = value
        write_config(ctx.state_dir, config)
    return name, value


def unset_config(ctx: Context, key: str) -> str:
    """Back to the default; the setting's own key."""
    name = config_key(key).key
    with ctx.registry.transaction():
        config = read_config(ctx.state_dir)
        if config.pop(name, None) is not None:
            write_config(ctx.state_dir, config)
    return name


def get_config(ctx: Context, key: str | None = None) -> dict[str, Any]:
    """Every setting (or the one asked for) with its value: set, or the default."""
    config = read_config(ctx.state_dir)
    names = [config_key(key).key] if key is not None else list(CONFIG_KEYS)
    return {name: config_value(config, name) for name in names}


def with_config_defaults(ctx: Context, spec: AppSpec) -> AppSpec:
    """A new or redefined app as the global settings make it: PM2's default file paths (pm2_log_paths)."""
    if not config_value(read_config(ctx.state_dir), "pm2_log_paths"):
        return spec
    return with_pm2_log_paths(spec, pm2_logs_dir(ctx, spec))


def pm2_logs_dir(ctx: Context, spec: AppSpec) -> str:
    """PM2's logs directory: $PM2_HOME/logs, PM2_HOME defaulting to ~/.pm2. An app that runs as another user (a
    system manager's `user`) gets that user's, where god can write its files as that user."""
    if spec.user is not None and not ctx.user:
        try:
            return os.path.join(pwd.getpwnam(spec.user).pw_dir, ".pm2", "logs")
        except KeyError:
            pass  # refused later, with the reason (no such user)
    home = ctx.environ.get("PM2_HOME") or os.path.join(ctx.environ.get("HOME") or os.path.expanduser("~"), ".pm2")
    return os.path.join(home, "logs")
