"""pmsd's own state files: the registry, god's counters, env files, runtime unit files, and one atomic writer."""
