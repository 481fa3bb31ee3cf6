"""god: pmsd's resident daemon (pmsd-god.service). systemd supervises the apps; god watches systemd over
D-Bus and adds PM2's semantics it lacks: restart accounting, exponential backoff, memory and watch restarts,
and an event stream. Apps never depend on it."""
