"""One exception type for problems the user can fix.

Library code raises :class:`PeprError` with a one-line message naming the bad value and what
would be accepted; the CLI prints it as a single line and exits non-zero, without a traceback.
"""


class PeprError(Exception):
    """A user-facing error: bad input, a missing file, a value out of range."""
