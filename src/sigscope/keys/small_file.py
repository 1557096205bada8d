"""A small text file a flag names (a bearer token, a PIN, USER:PASSWORD, a tokens or access list): read
whole under a size cap, as UTF-8, with errors that name the file and never quote its content (it may be a
secret). What its lines mean is the caller's."""

from __future__ import annotations

from sigscope.errors import SigscopeError, UsageError

MAX_SECRET_FILE = 4096


def read_small_file(
    path: str, what: str, *, limit: int = MAX_SECRET_FILE, error: type[SigscopeError] = UsageError
) -> str:
    """The text of `path`; `error` ("cannot read {what} {path}: …", too large, not UTF-8) otherwise. Any
    file that reads (a FIFO or /dev/fd/N from process substitution included), not only regular ones."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {(exc.strerror or 'error').lower()}") from None
    if len(data) > limit:
        raise error(f"{what} {path} is larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text") from None


def first_line(text: str) -> str:
    """The first line, without its line end (\\n or \\r\\n)."""
    return text.split("\n", 1)[0].removesuffix("\r")
