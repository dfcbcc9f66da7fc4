"""The one exception type for a user's own mistake (bad flag, missing file, wrong shape).

Library code raises :class:`RascalError` with a one-line message that names the problem and the
fix; the CLI turns it into a clean error with a non-zero exit and no traceback. It subclasses
``ValueError`` so notebook users can catch it the usual way.
"""


class RascalError(ValueError):
    """A problem with the caller's input, stated in one line with its fix."""
