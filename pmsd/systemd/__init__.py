"""The systemd adapter: the only package that speaks D-Bus and knows systemd's on-bus vocabulary."""
