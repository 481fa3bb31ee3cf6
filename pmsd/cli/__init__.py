"""The `pmsd` command line: a thin layer over pmsd's Python API.

Its modules import what a command uses inside that command's function, on purpose: every `pmsd` run pays for
what it imports, and `pmsd ls` must not pay for typer (~160 ms), jinja2 (~110 ms) or the journal reader. This
is the one layer where tests/test_layers.py allows imports inside functions without a `# lazy:` comment.
"""
