"""The definition layer: the settings table, ecosystem parsing, spec building, unit rendering, cron."""
