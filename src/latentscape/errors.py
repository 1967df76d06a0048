"""The one exception type for user errors: its message is a single sentence shown as-is by the CLI."""

from __future__ import annotations


class LatentscapeError(ValueError):
    """Bad input from a user (a path, a value): the message names what was wrong and what is accepted.

    ``field``: the config field or function argument the sentence is about (``device``, ``strength``), or
    None. Below the interfaces a sentence names the field, never a command-line flag: it starts with the
    field's name (``device got 'x'; expected ...``) and/or writes it as a keyword (``pass allow_pickle=True``,
    ``use device='cpu'``); the CLI rewrites exactly those spots as the verb's flag (``--device got 'x'``).
    """

    def __init__(self, message: str = "", *, field: str | None = None):
        super().__init__(message)
        self.field = field

    def __reduce__(self):  # keep ``field`` across pickling (the server's worker processes)
        return _rebuild, (type(self), str(self), self.field)


def _rebuild(cls: type, message: str, field: str | None) -> LatentscapeError:
    error = cls(message)
    error.field = field
    return error
