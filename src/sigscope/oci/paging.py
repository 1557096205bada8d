"""Following a registry's `Link: <…>; rel="next"` pages without trusting it to stop.

One engine for every paginated listing (the catalog, a tag list, the referrers API). A registry whose
`Link` points back at a page already read, or to another host (which would get our token), hands out a
`last=` it handed out before, sends a page with nothing new on it yet links to another, or never stops at
all, is cut off with a PaginationError naming the listing and why; before this, a `_catalog` linking to
itself kept `scan` and `ls` going for ever (19,483 requests in 40 s, the one repository scanned again each
time).

Names are deduplicated across pages on the way, so a listing that repeats itself cannot make a caller do
the same work twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from sigscope.errors import RegistryError

# Distribution pages its catalog at 100 by default and at most 1,000: 1,000 pages of 1,000 is a million
# repositories, more than any registry we know of, and still an end.
DEFAULT_MAX_PAGES = 1000
# A bound on names kept however they come (few pages of many names, or many of few): ~100 MB at most.
MAX_NAMES = 1_000_000


class PaginationError(RegistryError):
    """A listing's pages did not end, or did not advance; what was read before is still good."""


def _canonical(url: str) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    # The same page may come back with its query in another order: compare what it asks for.
    parts = urlsplit(url)
    return parts.netloc, parts.path, tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))


def _origin(url: str) -> tuple[str, str, int | None]:
    # "https://r:443" and "https://r" are one origin (yarl drops a default port, users may write it)
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _last(url: str) -> str | None:
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == "last":
            return value
    return None


@dataclass
class Pager:
    """The pages of one listing, as they are read; `what` names it in errors ("the tag list of a/b")."""

    what: str
    max_pages: int = DEFAULT_MAX_PAGES
    # scheme://host[:port] of the registry: a next page elsewhere would get its Authorization header
    origin: str | None = None
    pages: int = 0
    _new: int = 0  # names the last page added
    _fetched: set[tuple[str, str, tuple[tuple[str, str], ...]]] = field(default_factory=set)
    _lasts: set[str] = field(default_factory=set)
    _seen: set[str] = field(default_factory=set)

    def add(self, url: str, names: Iterable[str]) -> list[str]:
        """Record the page read from `url`; returns its names that no earlier page had, in order."""
        self.pages += 1
        self._fetched.add(_canonical(url))
        if (last := _last(url)) is not None:
            self._lasts.add(last)
        new: list[str] = []
        for name in names:
            if name not in self._seen:
                if len(self._seen) >= MAX_NAMES:
                    raise PaginationError(f"{self.what}: more than {MAX_NAMES:,} names (stopped)")
                self._seen.add(name)
                new.append(name)
        self._new = len(new)
        return new

    def follow(self, next_url: str | None) -> str | None:
        """The next page to read after the one just added, or None at the end; PaginationError when the
        registry's next page would not advance, or the listing is longer than `max_pages`."""
        if next_url is None:
            return None
        page = self.pages
        if self._new == 0:
            raise PaginationError(
                f"{self.what}: page {page} adds no new names, yet links to another (stopped)"
            )
        if self.origin is not None:
            if _origin(next_url) != _origin(self.origin):
                raise PaginationError(
                    f"{self.what}: the link on page {page} leads to another host "
                    f"({urlsplit(next_url).netloc!r}); "
                    "not followed"
                )
        if _canonical(next_url) in self._fetched:
            raise PaginationError(
                f"{self.what}: the link on page {page} repeats a page already read (stopped)"
            )
        last = _last(next_url)
        if last is not None and last in self._lasts:
            raise PaginationError(f"{self.what}: page {page} links back to last={last!r} (stopped)")
        if page >= self.max_pages:
            raise PaginationError(f"{self.what}: more than {self.max_pages} pages (stopped; see --max-pages)")
        return next_url
