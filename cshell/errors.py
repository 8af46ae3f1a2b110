"""The one error type that reaches users: a one-line message and a hint.

Every layer raises a subclass of CShellError; the front-ends print
``error: MESSAGE`` and ``hint: HINT`` and never a traceback.
"""

from __future__ import annotations


class CShellError(Exception):
    """A failure the user can act on."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


def printable(text: str) -> str:
    """User input inside a one-line message: as typed, but a newline, NUL, tab or other
    control character shown as its escape (\\n, \\x00, \\t), so the message stays one line."""
    return text if text.isprintable() else repr(text)[1:-1]


class UsageError(CShellError):
    """The command line itself is wrong (unknown command, bad flag)."""


class NotFound(CShellError):
    """A container, image or process that does not exist."""


class Conflict(CShellError):
    """A name already taken, or a state that forbids the action."""


class PrivilegeError(CShellError):
    """The action needs root."""


class RuntimeFailure(CShellError):
    """The kernel or the runtime refused a step."""


class ContainerCommandError(CShellError):
    """The command could not be started inside the container (like docker's 126/127)."""

    def __init__(self, message: str, hint: str = "", exit_code: int = 127) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code


def reason(e: BaseException) -> str:
    """An exception as words for a user: a CShellError's message, an OSError's strerror and the
    file it names (never "[Errno N] ..."), else its text, else what its type says."""
    if isinstance(e, CShellError):
        return e.message
    if isinstance(e, OSError) and e.strerror:
        names = [str(n) for n in (e.filename, e.filename2) if n is not None and not isinstance(n, int)]
        return f"{' -> '.join(names)}: {e.strerror}" if names else e.strerror
    if isinstance(e, EOFError):
        return str(e) or "the data ends early"
    return str(e) or type(e).__name__
