"""One error tree for sigscope.

Every error carries a message meant for a user and the exit code the CLI should
return, so faces never have to guess how bad something is.
"""

from __future__ import annotations

import errno
from http import HTTPStatus

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2


class SigscopeError(Exception):
    """Base of every error sigscope raises on purpose."""

    exit_code: int = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # What to do about it, when there is something better to say than the message; faces print it
        # after the message (the CLI on the same line).
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(SigscopeError):
    """The user asked for something malformed (bad reference, bad flag value)."""


class InvalidReferenceError(UsageError):
    """An image reference does not follow the grammar."""


class KeyFileError(UsageError):
    """A key or certificate file that cannot be read, or is not the kind of file it was given as.

    The message names the file, what it is and, when it is the wrong kind, what was expected. The face
    says which flag took the file (`role`, e.g. `--key for verify`): the library speaks of things only.
    """

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        expected: str | None = None,
        role: str | None = None,
        hint: str | None = None,
        unread: bool = False,
    ) -> None:
        # `unread`: the file could not be looked at (missing, unreadable), so `problem` is not what it is.
        if expected is None:
            message = f"{path}: {problem}"
        elif unread:
            message = f"{path}: {problem} ({role or 'here'} takes {expected})"
        elif role is not None:
            message = f"{path}: {problem}, but {role} takes {expected}"
        else:
            message = f"{path}: {problem}, not {expected}"
        super().__init__(message, hint=hint)
        self.path = path
        self.problem = problem
        self.expected = expected


def os_problem(exc: OSError) -> str:
    """What an OSError says about a file, in the words of KeyFileError's messages."""
    if exc.errno == errno.ENOENT:
        return "no such file"
    if exc.errno == errno.EISDIR:
        return "a directory"
    if exc.errno == errno.EACCES:
        return "permission denied"
    return (exc.strerror or type(exc).__name__).lower()


class RegistryError(SigscopeError):
    """The registry answered, but not with what we needed."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class NotFoundError(RegistryError):
    """A repository, manifest, tag or blob does not exist."""


class AuthError(RegistryError):
    """Credentials were missing or refused."""


def _printable(text: str) -> str:
    # A registry's words reach a terminal: escaped as every name from outside is (report/escape.py), so no
    # escape sequence or line break acts and a forged one shows; bounded.
    from sigscope.report.escape import printable

    cleaned = printable(text.strip())
    return cleaned if len(cleaned) <= 200 else cleaned[:199] + "…"


def registry_error(subject: str, status: int, code: str | None, message: str) -> RegistryError:
    """The one wording of a registry's refusal, whichever verb met it and however it was asked (a HEAD
    carries no error body, so the client asks again with a GET to have one):
    `<what the registry said> (<its error code, else HTTP status; both for 5xx>) for <subject>`, e.g.
    `manifest unknown (MANIFEST_UNKNOWN) for 127.0.0.1:5000/a/b:missing`.

    404 is a :class:`NotFoundError`, 401/403 an :class:`AuthError`, anything else a :class:`RegistryError`.
    """
    said = _printable(message)
    label = _printable(code) if code else ""
    if not said:
        try:
            said = HTTPStatus(status).phrase.lower()
        except ValueError:
            said = "unexpected answer"
    if not label:
        label = f"HTTP {status}"
    elif status >= 500:  # a server's failure: its status says more than the code it chose (or a proxy's)
        label = f"{label}, HTTP {status}"
    text = f"{said} ({label}) for {subject}"
    kind = NotFoundError if status == 404 else AuthError if status in (401, 403) else RegistryError
    return kind(text, status=status, code=code)


class UnreachableError(SigscopeError):
    """A host could not be reached (DNS, refused connection, timeout, TLS)."""


class DeadlineError(UnreachableError):
    """A request did not complete within its deadline (--timeout).

    Never retried: a silent or trickling server stays so, and a retry would multiply the time
    the user gave.
    """


class TLSError(UnreachableError):
    """TLS handshake or certificate verification failed."""


class IntegrityError(SigscopeError):
    """Bytes did not match the digest or size they were fetched under.

    A registry that lies is never a source of evidence, so this is never retried
    or downgraded to a warning.
    """


class TooLargeError(IntegrityError):
    """Content exceeded a configured size limit."""


class LayoutError(SigscopeError):
    """An OCI image layout directory is missing or malformed."""


class MalformedJSONError(SigscopeError, ValueError):
    """JSON from outside that is broken, nested too deeply, or readable two ways (formats/gojson.read).

    Also a ValueError: the format parsers that catch ValueError around their JSON reading keep doing so.
    """
