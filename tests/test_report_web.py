"""`report serve` and `-o html` in headless Chromium (Debian's chromium driven by Playwright through
executable_path; no browser download): page content, element presence, chart points, the table within a
1400 px viewport, hostile names shown as text; checked for content, not pixels. One browser per module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from testbed.absent import unavailable
from testbed.cli import SCRUBBED, run_sigscope
from testbed.registry import free_port

from sigscope.store import Inventory
from sigscope.store.records import CertificateRow, ImageRow, RunStart, SignatureRow

CHROMIUM = "/usr/bin/chromium"
NOW = datetime.now(UTC).replace(microsecond=0)
HOSTILE = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
WIDTH = 1400


def _sig(identity: str, status: str, days: float) -> SignatureRow:
    return SignatureRow(
        format="cosign",
        status=status,
        location="tag sha256-x.sig layer 1",
        checks=[{"name": "signature", "outcome": "pass", "detail": f"by {identity}"}],
        record={"format": "cosign", "status": status},
        signer=f"CN={identity}",
        identity=identity,
        issuer="CN=Release CA,O=Example",
        certificates=[
            CertificateRow(
                "signing",
                0,
                f"CN={identity}",
                "CN=Release CA",
                "0a",
                "1" * 64,
                NOW - timedelta(days=30),
                NOW + timedelta(days=days),
                False,
            ),
            CertificateRow(
                "intermediate",
                1,
                "CN=Release CA",
                "CN=Root",
                "0b",
                "2" * 64,
                NOW - timedelta(days=30),
                NOW + timedelta(days=900),
                True,
            ),
        ],
    )


def _image(repo: str, n: int, signed: bool, identity: str = "release@example.com", **kw: Any) -> ImageRow:
    sigs = [_sig(identity, kw.pop("status", "verified"), kw.pop("days", 200))] if signed else []
    return ImageRow(
        kind="image",
        source="registry.example:5000",
        path=f"{repo}:v{n}",
        repository=repo,
        digest=f"sha256:{n:064x}",
        tags=(f"v{n}",),
        signatures=sigs,
        **kw,
    )


def _run(inv: Inventory, rows: list[ImageRow], at: datetime) -> None:
    run_id = inv.start_run(
        RunStart(
            "registry",
            "registry.example:5000",
            "registry.example:5000",
            "registry registry.example:5000",
            at,
            {},
            "ab" * 32,
        )
    )
    inv.write_images(run_id, rows, at)
    inv.finish_run(run_id, at, {"images": len(rows)})


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Three scans a day apart: 60 images over three repositories, the signed share growing, then one
    image turned unsigned, a certificate about to expire and a signer with a hostile name."""
    path = str(tmp_path_factory.mktemp("web") / "inventory.db")
    with Inventory.open(path) as inv:
        for day, signed_upto in ((2, 20), (1, 40)):
            rows = [_image(f"team/service-{n % 3}", n, n < signed_upto) for n in range(60)]
            _run(inv, rows, NOW - timedelta(days=day))
        rows = [_image(f"team/service-{n % 3}", n, n < 50 and n != 7) for n in range(60)]
        rows[1] = _image("team/service-1", 1, True, identity=HOSTILE, days=5)
        rows.append(_image("team/" + "very-long-repository-name-" * 6, 99, True, status="invalid"))
        _run(inv, rows, NOW)
    return path


@pytest.fixture(scope="module")
def server(db: str) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sigscope", "report", "serve", "--db", db, "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "/healthz", timeout=0.5)
                break
            except requests.RequestException:
                assert proc.poll() is None and time.monotonic() < end, (
                    proc.stderr.read() if proc.stderr else ""
                )
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable("chromium (apt-get install chromium; scripts/setup.sh does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": WIDTH, "height": 1000})
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def _fits(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"the page is {width} px wide at a {WIDTH} px viewport"
    for table in page.query_selector_all("table"):
        box = table.bounding_box()
        assert box is None or box["x"] + box["width"] <= WIDTH


def test_dashboard(page: Any, server: str, tmp_path: Path) -> None:
    page.goto(server + "/")
    text = page.inner_text("body")
    for heading in (
        "Signed share by registry",
        "Repositories",
        "Latest changes",
        "Images",
        "Signer identities",
        "Certificates expiring within 30 days",
    ):
        assert heading in text
    # the chart: one point per scan of the registry, and a sparkline per repository
    assert len(page.query_selector_all("svg.chart circle.pt")) == 3
    assert len(page.query_selector_all("#repositories svg.spark")) >= 3
    assert "newly-unsigned" in text and "team/service-1:v7" in text
    # hostile names are text, not markup
    assert page.evaluate("window.pwned") is None
    assert HOSTILE in text
    assert len(page.query_selector_all("#images-table tr")) == 1 + 50
    bar = page.query_selector("#repositories .bar .s").bounding_box()
    assert bar is not None and bar["width"] > 10  # the signed part of a share bar is drawn
    _fits(page)
    shot = tmp_path / "report-web.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("SIGSCOPE_SCREENSHOT"):
        shutil.copy(shot, os.environ["SIGSCOPE_SCREENSHOT"])


def test_table_filters_sorts_pages_and_links_to_evidence(page: Any, server: str) -> None:
    page.goto(server + "/?status=unsigned#images")
    statuses = page.eval_on_selector_all("#images-table td .badge", "els => els.map(e => e.textContent)")
    assert statuses and set(statuses) == {"unsigned"}
    page.goto(server + "/")
    page.fill("input[name=q]", "service-2")
    page.click("form.filter button")
    names = page.eval_on_selector_all("#images-table td:first-child a", "els => els.map(e => e.textContent)")
    assert names and all("service-2" in n for n in names)
    page.goto(server + "/?sort=path&dir=desc")
    first = page.inner_text("#images-table tr:nth-child(2) td:first-child")
    assert first.startswith("team/very-long")
    page.click("a[rel=next]")
    assert "Page 2 of 2" in page.inner_text(".pager")
    page.click("#images-table td:first-child a")
    text = page.inner_text("body")
    assert "Certificate chain" in text and "Checks" in text and "CN=Release CA" in text
    _fits(page)


def test_evidence_escapes_and_unknown_ids(page: Any, server: str) -> None:
    page.goto(server + "/#signers")
    page.click("#signers-table a:text('team/service-1:v1')")
    assert HOSTILE in page.inner_text("body") and page.evaluate("window.pwned") is None
    assert requests.get(server + "/image/999999", timeout=5).status_code == 404
    assert requests.get(server + "/image/1%20OR%201=1", timeout=5).status_code == 404
    assert requests.post(server + "/", timeout=5).status_code == 405
    headers = requests.get(server + "/", timeout=5).headers
    assert "default-src 'none'" in headers["content-security-policy"]


def test_scan_html_fits_and_draws_no_glyphs(page: Any, registry: Any, tmp_path: Path) -> None:
    result = run_sigscope("scan", "registry", registry.host, "--insecure", "-o", "html")
    assert result.returncode == 0, result.stderr
    assert "✅" not in result.stdout and "❌" not in result.stdout
    report = tmp_path / "scan.html"
    report.write_text(result.stdout)
    page.goto(report.as_uri())
    assert "demo/alpine:1.0" in page.inner_text("body")
    assert page.query_selector(".badge.b-unsigned") is not None
    _fits(page)
