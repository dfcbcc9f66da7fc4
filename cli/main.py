"""The root ``rascal`` group. Sub-commands import their heavy dependencies inside their bodies,
so ``rascal --help`` stays instant."""

from __future__ import annotations

import importlib

import click

from rascal_train import __version__

# name -> module under rascal_cli.commands; each module defines a click command `command`.
_COMMANDS = ("demo", "train", "eval", "analyze", "embed", "compare", "report", "sweep")


class _LazyGroup(click.Group):
    """Loads a sub-command's module only when that command (or the help listing) needs it."""

    def list_commands(self, ctx):
        return list(_COMMANDS)

    def get_command(self, ctx, name):
        if name not in _COMMANDS:
            return None
        return importlib.import_module(f"rascal_cli.commands.{name}").command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rascal")
def cli():
    """rascal: train image encoders with RASCAL / SupCon / CE and measure the
    structure inside classes.

    Start with `rascal demo`, which runs the whole pipeline on the built-in synthetic set.
    """
