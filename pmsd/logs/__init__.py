"""Logs: reading the journal (and PM2-style log files) for `pmsd logs`."""
