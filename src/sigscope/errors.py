"""One error tree for sigscope.

Every error carries a message meant for a user and the exit code the CLI should
return, so faces never have to guess how bad something is.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2


class SigscopeError(Exception):
    """Base of every error sigscope raises on purpose."""

    exit_code: int = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(SigscopeError):
    """The user asked for something malformed (bad reference, bad flag value)."""


class InvalidReferenceError(UsageError):
    """An image reference does not follow the grammar."""


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
