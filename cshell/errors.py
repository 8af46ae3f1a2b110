"""The one error type that reaches users: a one-line message and a hint.

Every layer raises a subclass of CShellError; the front-ends print
``error: MESSAGE`` and ``hint: HINT`` and never a traceback.
"""

from __future__ import annotations


class CShellError(Exception):
    """A failure the user can act on. ``status`` is the one-shot exit status, as docker's:
    1 for most failures, 125 for a flag docker's parser refuses and for anything that stops
    `run` before the command starts (see ``status_of``)."""

    status = 1

    def __init__(self, message: str, hint: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if status is not None:
            self.status = status

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


RUN_FAILED = 125  # docker run: the daemon or the runtime failed, the command never started
CANNOT_EXECUTE = 126  # the command exists but cannot be executed
NOT_FOUND = 127  # the command was not found


def command_status(e: CShellError, command: str) -> int:
    """The exit status docker gives when ``command`` fails with ``e`` before the container's
    own command ran: `run` 127/126 (not found / cannot execute) or 125 for anything else;
    `exec` 126 for whatever stops the process from starting; every other command 1."""
    if command == "run":
        if (isinstance(e, ContainerCommandError) and e.exit_code in (CANNOT_EXECUTE, NOT_FOUND)
                and e.message.startswith("exec: ")):  # runc's own words: the execve itself failed
            return e.exit_code
        return e.status if "status" in vars(e) else RUN_FAILED  # a status given explicitly wins
    if command == "exec" and isinstance(e, ContainerCommandError):
        return CANNOT_EXECUTE
    return e.status


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
