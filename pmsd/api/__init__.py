"""pmsd's Python API: what the CLI, god and `pmsd.connect()` all call (lifecycle, cluster, queries, targets,
logs, god control)."""
