"""Reading local files that came from outside (a scanned tree, an OCI layout), the way `body.py` reads
HTTP bodies: never more than a limit, and only from regular files inside the tree the user named.

Why each rule:
- A FIFO blocks `open()` until a writer appears and a device (`/dev/zero`) never ends, so the type is
  checked with a stat *before* opening (opening some devices has effects of its own), the open is
  non-blocking, and `fstat` on the open descriptor checks again: the name may have changed in between.
- A symbolic link is a second name for anything on the machine. Without `follow`, the last component is
  opened with O_NOFOLLOW; with it, the link's resolved target must lie under one of `roots`, so a
  `shadow -> /etc/shadow` planted in a scanned tree is never read. (A tree being rewritten *while* it is
  scanned can still swap a directory for a link between the check and the open; what a scan promises is
  about the tree as it stands.)
- A size from `fstat` is checked before any byte is read, and the read itself stops one byte past the
  limit, so a file that grows meanwhile still costs at most `limit` bytes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from sigscope.errors import SigscopeError, TooLargeError

CHUNK = 1 << 20


class UnsafeFileError(SigscopeError):
    """A path that is not a regular file, or leads where the scan may not read."""


@dataclass(frozen=True)
class Boundary:
    """Where local reads may go: `follow` symbolic links or not, and real paths every read must stay
    under (`roots`; empty: anywhere, for a path the user named directly)."""

    follow: bool = True
    roots: tuple[str, ...] = ()

    @classmethod
    def of(cls, paths: Sequence[str], *, follow: bool) -> Boundary:
        return cls(follow=follow, roots=tuple(os.path.realpath(p) for p in paths))

    def chosen(self) -> Boundary:
        """The boundary for a file the walk itself chose (a PATH that is a link included, as find -H
        follows it): its links were judged by the walk, so they are followed, still only inside the roots.
        Files found *next to* it (a detached signature's partner) keep the walk's own rule."""
        return Boundary(follow=True, roots=self.roots)

    def admits(self, path: str) -> bool:
        """Whether `path`, every link resolved, lies under one of the roots."""
        if not self.roots:
            return True
        real = os.path.realpath(path)
        return any(real == root or real.startswith(root.rstrip("/") + "/") for root in self.roots)


ANYWHERE = Boundary()


def check_regular(path: str, boundary: Boundary, what: str) -> os.stat_result:
    """The stat of `path` if the boundary lets it be read as a regular file; UnsafeFileError naming why
    not. OSError (missing, unreadable) passes through for the caller to word."""
    st = os.stat(path) if boundary.follow else os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFileError(
            f"{what} {path}: a symbolic link, left unread: links are followed only when asked to"
        )
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"{what} {path}: not a regular file")
    if not boundary.admits(path):
        raise UnsafeFileError(f"{what} {path}: leads outside the scanned tree, not read")
    return st


def open_regular(
    path: str | os.PathLike[str], boundary: Boundary = ANYWHERE, what: str = "file"
) -> IO[bytes]:
    """`path` opened for reading, when it is a regular file `boundary` admits."""
    name = os.fspath(path)
    check_regular(name, boundary, what)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if boundary.follow else os.O_NOFOLLOW)
    try:
        fd = os.open(name, flags)
    except OSError as exc:
        if not boundary.follow and exc.errno == getattr(os, "ELOOP", 40):  # became a link since the lstat
            raise UnsafeFileError(f"{what} {name}: a symbolic link, not followed") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeFileError(f"{what} {name}: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(handle: IO[bytes], limit: int, what: str) -> bytes:
    """The rest of an open regular file; TooLargeError naming `what` and the limit past `limit` bytes."""
    size = os.fstat(handle.fileno()).st_size
    if size > limit:
        raise TooLargeError(f"{what} is {size} bytes, over the {limit}-byte limit")
    # size + 1 in one read: the usual case is one allocation of the right size, and a file that grew
    # since the fstat is noticed (and then read on in chunks, counted, up to the limit)
    data = handle.read(size + 1)
    if len(data) <= size:
        return data
    parts = [data]
    total = len(data)
    while chunk := handle.read(min(CHUNK, limit + 1 - total)):
        parts.append(chunk)
        total += len(chunk)
        if total > limit:
            break
    if total > limit:
        raise TooLargeError(f"{what} exceeds the {limit}-byte limit")
    return b"".join(parts)


def read_bounded(path: str | os.PathLike[str], limit: int, what: str, boundary: Boundary = ANYWHERE) -> bytes:
    """A whole regular file of at most `limit` bytes."""
    with open_regular(path, boundary, what) as handle:
        return read_limited(handle, limit, what)


def hash_stream(handle: IO[bytes], hashers: Iterable[Any]) -> int:
    """Feed every remaining byte of `handle` to each hash object, a chunk at a time; the byte count."""
    targets = list(hashers)
    size = 0
    while chunk := handle.read(CHUNK):
        for h in targets:
            h.update(chunk)
        size += len(chunk)
    return size
