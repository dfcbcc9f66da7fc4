"""The boundary where a user's mistake becomes one clean line and a non-zero exit."""

from __future__ import annotations

import functools

import click

from rascal_train.errors import RascalError


def user_errors(fn):
    """Decorate a click command so library ``RascalError``s exit 1 with their message, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RascalError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            raise click.ClickException("Interrupted; files already written are complete "
                                       "(writes are atomic) and the run can be resumed.") from None

    return wrapper
