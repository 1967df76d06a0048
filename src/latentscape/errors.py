"""The one exception type for user errors: its message is a single sentence shown as-is by the CLI."""


class LatentscapeError(ValueError):
    """Bad input from a user (a path, a flag, a value): the message names what was wrong and what is accepted."""
