"""Where `pmsd set` keeps the global settings (pmsd.definition.config): config.json in the state directory,
beside the registry, written atomically; god notices a change as it notices the registry's."""

from __future__ import annotations

import json
import os
from typing import Any

from pmsd.errors import PmsdError
from pmsd.state.atomic import write_atomic

CONFIG_FILE = "config.json"


def config_path(state_dir: str) -> str:
    return os.path.join(state_dir, CONFIG_FILE)


def read_config(state_dir: str) -> dict[str, Any]:
    """The stored settings; empty when nothing was ever set."""
    path = config_path(state_dir)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise PmsdError(f"cannot read pmsd's global settings {path}: {error}",
                        "fix or remove the file, then `pmsd set` again") from None
    if not isinstance(data, dict):
        raise PmsdError(f"pmsd's global settings {path} hold no JSON object", "fix or remove the file")
    return data


def write_config(state_dir: str, config: dict[str, Any]) -> None:
    write_atomic(config_path(state_dir), json.dumps(config, indent=2, sort_keys=True) + "\n")
