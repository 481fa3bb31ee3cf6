"""Console renderings of pmsd's data: PM2's table, jlist JSON, prettylist JS objects, describe."""
