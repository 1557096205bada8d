"""The engines behind tests/test_hostile_registry.py, each rule on its own: the Pager's reasons to stop,
where credentials may go, and the budget of bytes in flight."""

from __future__ import annotations

import asyncio
import re

import pytest

from sigscope.oci.paging import Pager, PaginationError
from sigscope.oci.realm import credentials_withheld
from sigscope.report.scaffold import spreadsheet_safe
from sigscope.sources.budget import ByteBudget

BASE = "http://r.example/v2/_catalog"


def test_pager_keeps_each_name_once_and_follows_advancing_links() -> None:
    pager = Pager("the catalog of r", max_pages=10)
    assert pager.add(f"{BASE}?n=2", ["a", "b"]) == ["a", "b"]
    assert pager.follow(f"{BASE}?n=2&last=b") == f"{BASE}?n=2&last=b"
    assert pager.add(f"{BASE}?n=2&last=b", ["b", "c", "c"]) == ["c"]
    assert pager.follow(None) is None


@pytest.mark.parametrize(
    ("pages", "reason"),
    [
        # (query read, its names, the query its Link names); the last Link is the one refused
        ([("?n=2", ["a"], "?n=2")], "the link on page 1 repeats a page already read"),
        ([("?n=2&x=1", ["a"], "?x=1&n=2")], "the link on page 1 repeats a page"),  # the same, reordered
        ([("?n=2&last=a", ["b"], "?n=3&last=a")], "page 1 links back to last='a'"),
        ([("?n=2", ["a"], "?n=2&last=a"), ("?n=2&last=a", ["a"], "?n=2&last=b")], "page 2 adds no new names"),
    ],
)
def test_pager_stops_where_a_listing_does_not_advance(
    pages: list[tuple[str, list[str], str]], reason: str
) -> None:
    pager = Pager("the catalog of r")
    *before, (query, names, link) = pages
    for earlier_query, earlier_names, earlier_link in before:
        pager.add(BASE + earlier_query, earlier_names)
        pager.follow(BASE + earlier_link)
    pager.add(BASE + query, names)
    with pytest.raises(PaginationError, match=f"the catalog of r: {reason}"):
        pager.follow(BASE + link)


def test_pager_follows_links_only_on_the_registry() -> None:
    pager = Pager("the catalog of r", origin="http://r.example:80")
    pager.add(f"{BASE}?n=1", ["a"])
    assert pager.follow(f"{BASE}?n=1&last=a")  # the same origin, its default port left out
    pager.add(f"{BASE}?n=1&last=a", ["b"])
    with pytest.raises(PaginationError, match=re.escape("leads to another host ('elsewhere.example')")):
        pager.follow("http://elsewhere.example/v2/_catalog?n=1&last=b")


def test_pager_stops_at_max_pages() -> None:
    pager = Pager("the tag list of a/b", max_pages=3)
    for n in range(3):
        pager.add(f"{BASE}?last={n}", [str(n)])
        if n < 2:
            pager.follow(f"{BASE}?last={n + 1}")
    with pytest.raises(PaginationError, match="the tag list of a/b: more than 3 pages"):
        pager.follow(f"{BASE}?last=3")


@pytest.mark.parametrize(
    ("registry", "realm", "withheld"),
    [
        ("https://r.example", "https://auth.example/token", None),  # Docker Hub's shape
        ("http://127.0.0.1:5000", "https://auth.example/token", None),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5001/token", None),  # beside an --insecure registry
        ("http://127.0.0.1:5000", "http://127.0.0.2:5001/token", "another host"),
        ("https://r.example", "http://r.example/token", "behind an HTTPS registry"),
        ("https://r.example", "ftp://r.example/token", "neither https nor http"),
    ],
)
def test_where_credentials_may_go(registry: str, realm: str, withheld: str | None) -> None:
    reason = credentials_withheld(registry, realm)
    assert (reason is None) if withheld is None else (reason is not None and withheld in reason), reason


def test_byte_budget_bounds_what_is_in_flight() -> None:
    async def main() -> int:
        budget = ByteBudget(64)
        peak = now = 0

        async def fetch(size: int) -> None:
            nonlocal peak, now
            async with budget.hold(size):
                now += min(size, 64)
                peak = max(peak, now)
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                now -= min(size, 64)

        await asyncio.gather(*(fetch(32) for _ in range(16)), fetch(1000), fetch(0))
        assert budget.free == 64
        return peak

    assert asyncio.run(main()) == 64  # two of 32 at a time, the 1000-byte one alone


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("a=1", "a=1"),
        ("", ""),
        (None, None),
    ],
)
def test_spreadsheet_safe(value: str | None, shown: str | None) -> None:
    assert spreadsheet_safe(value) == shown
