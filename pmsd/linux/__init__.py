"""The Linux adapter: inotify and /proc readers. Imports nothing of pmsd above `pmsd.errors`."""
