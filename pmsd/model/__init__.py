"""pmsd's own typed model: app definitions (specs), registry records, PM2 statuses, events, god's wire format."""
