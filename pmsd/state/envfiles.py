"""The app's environment (pmsd.definition.environment), kept in an owner-only EnvironmentFile=.

Values can be secrets, and unit properties such as Environment= are readable by every local user over D-Bus
(`systemctl show`), so pmsd writes them to a 0600 file the manager reads at each start (systemd.exec(5),
EnvironmentFile=).
"""

from __future__ import annotations

from collections.abc import Mapping

from pmsd.state.atomic import write_atomic


def render_env_file(env: Mapping[str, str]) -> str:
    """KEY="value" lines. Inside double quotes systemd's env-file parser (src/basic/env-file.c) takes
    newlines literally and unescapes only \\\\, \\", \\` and \\$, so escaping exactly those round-trips any value."""
    lines = []
    for key in sorted(env):
        value = env[key]
        for char in ("\\", '"', "`", "$"):
            value = value.replace(char, "\\" + char)
        lines.append(f'{key}="{value}"\n')
    return "".join(lines)


def parse_env_file(text: str) -> dict[str, str]:
    """Inverse of render_env_file (for `pmsd env` and restarts that keep the stored environment)."""
    env: dict[str, str] = {}
    index = 0
    while index < len(text):
        end_key = text.find('="', index)
        if end_key < 0:
            break
        key = text[index:end_key]
        index = end_key + 2
        value: list[str] = []
        while index < len(text) and text[index] != '"':
            if text[index] == "\\" and index + 1 < len(text):
                index += 1
            value.append(text[index])
            index += 1
        env[key] = "".join(value)
        index += 2  # closing quote and newline
    return env


def write_env_file(path: str, env: Mapping[str, str], durable: bool = True) -> None:
    """Write atomically with mode 0600 from the first byte (never briefly world-readable)."""
    write_atomic(path, render_env_file(env), durable=durable)


def read_env_file(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8", newline="") as handle:  # keep "\r" in values as systemd does
        return parse_env_file(handle.read())
