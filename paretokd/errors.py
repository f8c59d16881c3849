"""The one error type a user can cause.

The CLI prints a :class:`ParetokdError` as one line and exits with status 2;
anything else is a bug and keeps its traceback.
"""


class ParetokdError(Exception):
    """A problem the user can fix: bad input, a missing file, a mismatched study."""
