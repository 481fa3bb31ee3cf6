"""pmsd: PM2's process-manager semantics on top of systemd."""

__version__ = "0.1.0"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pmsd.api.client import GodClient


def connect(user: bool = True, start: bool = True, timeout: float = 30.0) -> "GodClient":
    """pmsd's programmatic API (like PM2's `pm2.connect()`): see pmsd.api.client."""
    # lazy: `import pmsd.<anything>` runs this file first; the API's imports are paid only by callers.
    from pmsd.api.client import connect as _connect

    return _connect(user=user, start=start, timeout=timeout)
