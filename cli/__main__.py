"""``python -m rascal_cli``: the ``rascal`` command, for environments without the console script."""

from rascal_cli.main import cli

cli(prog_name="rascal")
