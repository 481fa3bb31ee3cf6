"""The `pmsd` command line: a thin layer over pmsd's Python API."""
