"""The boundary where a user's mistake becomes one clean line and a non-zero exit."""

from __future__ import annotations

import functools
import signal
import threading

import click

from rascal_train.errors import RascalError


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def user_errors(fn):
    """Decorate a click command so a user's mistake exits 1 with one line, no traceback.

    Library ``RascalError``s keep their message; a file-system error the user's paths caused
    names the file; SIGTERM (what a cluster scheduler sends to pre-empt a job) is handled as
    Ctrl-C, so both stop at a point where every file written is complete.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
        try:
            return fn(*args, **kwargs)
        except RascalError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            raise click.ClickException("Interrupted; files already written are complete (writes "
                                       "are atomic), and the same command continues from "
                                       "there.") from None
        except OSError as exc:  # the user's file system: a path, a permission, a full disk
            where = f"{exc.filename}: " if exc.filename is not None else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}; check the path, its "
                                       "permissions and the free space.") from None
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)

    return wrapper
