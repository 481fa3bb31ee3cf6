"""pmsd: PM2's process-manager semantics on top of systemd."""

__version__ = "0.1.0"
