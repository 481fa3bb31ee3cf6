"""Small value formats PM2 users know: uptime "5m", memory "12.3mb"."""

from __future__ import annotations


def uptime(since_ms: int, now_ms: int) -> str:
    if not since_ms:
        return "0"
    seconds = max(0, (now_ms - since_ms) // 1000)
    for size, suffix in ((86400, "D"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


def memory(size: int) -> str:
    if size <= 0:
        return "0b"
    value = float(size)
    for suffix in ("b", "kb", "mb", "gb"):
        if value < 1024 or suffix == "gb":
            return f"{value:.0f}{suffix}" if suffix in ("b", "kb") else f"{value:.1f}{suffix}"
        value /= 1024
    return f"{value:.1f}gb"
