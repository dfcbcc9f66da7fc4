"""Parameter types for the files and folders a command writes, checked before any work starts."""

from __future__ import annotations

from pathlib import Path

import click

from rascal_train.errors import RascalError


class OutputPath(click.Path):
    """A ``click.Path`` for an output: never empty, never under a file, in a folder that can be
    written.

    Parameters
    ----------
    folder : bool, default=False
        The output is a folder (else a file).
    suffixes : tuple of str
        The kinds of file this output may replace (see :func:`rascal_train.files.check_output`).
    """

    def __init__(self, folder: bool = False, suffixes: tuple[str, ...] = ()):
        super().__init__(file_okay=not folder, dir_okay=folder, path_type=Path)
        self.folder, self.suffixes = folder, suffixes

    def convert(self, value, param, ctx):
        from rascal_train.files import check_output

        if isinstance(value, str) and not value.strip():
            self.fail("is empty; pass a path.", param, ctx)
        path = super().convert(value, param, ctx)
        try:
            return check_output(path, folder=self.folder, suffixes=self.suffixes)
        except RascalError as exc:
            self.fail(str(exc), param, ctx)
