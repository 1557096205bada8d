"""A hostile registry (issue 12): every fault ends in bounded time and memory with one error row, the rest of
the scan reported, and no traceback.

The registry is the real one wherever it can hold the data (a referrers index that lists itself, a `.sig`
whose layers claim 128 MiB, a certificate whose e-mail starts with `=`); the fault proxy
(tests/testbed/proxy.py) only where a registry cannot produce the fault: a `Link` that loops, a tag list
without end, names with ESC or CR in them, bodies of 128 MiB. Times are generous upper bounds on a fault;
memory is the peak RSS of the sigscope process.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from testbed import ALICE_PASSWORD, ALICE_USER, RegistryHandle, build_layout, push_layout, start_registry
from testbed.cli import SCRUBBED, assert_clean_failure
from testbed.forge import COSIGN_MEDIA, push_cosign_signature, push_image
from testbed.proxy import RegistryProxy

from sigscope.model import Descriptor
from sigscope.oci import mediatypes
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.oci.reference import referrers_tag

BOUND = 30.0  # seconds: every fault here ends far sooner; a loop never does
RSS_BOUND = 300 * 1024 * 1024
BIG = 128 * 1024 * 1024  # what each signature layer claims (and the proxy sends)
LAYERS = 16
UNKNOWN_ARTIFACT = "application/vnd.example.report.v1+json"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss: int  # bytes, of the sigscope process alone


# Runs sigscope as a grandchild so that RUSAGE_CHILDREN measures it alone (not the registries, skopeo or
# earlier runs this test process waited for).
_MEASURE = """
import os, resource, subprocess, sys
limit = float(os.environ.get("HOSTILE_TIMEOUT", "120")) - 2
try:
    code = subprocess.call([sys.executable, "-m", "sigscope", *sys.argv[1:]], timeout=limit)
except subprocess.TimeoutExpired:  # the child is killed, and its peak still counted
    code = -9
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=open(sys.argv[0] + ".rss", "w"))
sys.exit(code)
"""


def run(*args: str, tmp: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    script = tmp / "measure.py"
    script.write_text(_MEASURE)
    environment = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    environment["DOCKER_CONFIG"] = "/nonexistent-sigscope-test"
    environment.update(env or {})
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=float(os.environ.get("HOSTILE_TIMEOUT", "120")),
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )
    seconds = time.monotonic() - started
    if os.environ.get("HOSTILE_REPORT"):  # measurements for the record (before/after a fix)
        rss = int(Path(str(script) + ".rss").read_text()) // 1024
        print(f"\n{args[:3]}: {seconds:.1f} s, rc {result.returncode}, max RSS {rss} MiB", file=sys.stderr)
    rss = int(Path(str(script) + ".rss").read_text()) * 1024  # ru_maxrss is in KiB on Linux
    return Run(result.returncode, result.stdout, result.stderr, seconds, rss)


def assert_sane(result: Run, *, terminal: bool = True) -> None:
    """Bounded, no traceback, nothing the terminal would act on (on stdout too when it is for one)."""
    assert result.seconds < BOUND, result
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    for stream in (result.stdout, result.stderr) if terminal else (result.stderr,):
        assert "\x1b" not in stream and "\r" not in stream and "\x07" not in stream, stream


def paths(proxy: RegistryProxy, fragment: str) -> list[str]:
    return [path for _, path in proxy.requests if fragment in path]


# ---------------------------------------------------------------- the registry


@dataclass
class Hostile:
    registry: RegistryHandle
    digests: dict[str, str]


async def _sig_with_big_layers(client: RegistryClient, repo: str, subject: str, claim: int) -> None:
    """A cosign `.sig` of LAYERS layers, each a distinct small blob the manifest says is `claim` bytes."""
    layers = []
    for n in range(LAYERS):
        blob = await client.put_blob(repo, f"payload {n}".encode(), COSIGN_MEDIA)
        layers.append(
            {
                "mediaType": COSIGN_MEDIA,
                "digest": blob.digest,
                "size": claim,
                "annotations": {"dev.cosignproject.cosign/signature": base64.b64encode(b"x").decode()},
            }
        )
    config = await client.put_blob(repo, b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_EMPTY, "digest": config.digest, "size": config.size},
        "layers": layers,
    }
    tag = "sha256-" + subject.split(":", 1)[1] + ".sig"
    await client.put_manifest(repo, json.dumps(manifest).encode(), mediatypes.OCI_MANIFEST, tag)


def _index(*entries: Descriptor) -> bytes:
    manifests = [
        {"mediaType": e.media_type, "digest": e.digest, "size": e.size, "artifactType": UNKNOWN_ARTIFACT}
        for e in entries
    ]
    return json.dumps(
        {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": manifests}
    ).encode()


def _serve_fallback_index(proxy: RegistryProxy, repo: str, subject: str, body: bytes) -> None:
    """The proxy answers `subject`'s referrers tag (sha256-<hex>) in `repo` with `body`, under its digest."""
    path = rf"/v2/{repo}/manifests/{referrers_tag(subject)}$"
    proxy.tamper(path, replace=body)
    proxy.override_header(path, "Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())


async def _referrer(client: RegistryClient, repo: str, subject: Descriptor, n: int) -> Descriptor:
    """A report (unknown artifact type) about `subject`."""
    config = await client.put_blob(repo, mediatypes.EMPTY_JSON)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "artifactType": UNKNOWN_ARTIFACT,
            "config": {"mediaType": mediatypes.OCI_EMPTY, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": mediatypes.OCI_EMPTY, "digest": config.digest, "size": config.size}],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
            "annotations": {"n": str(n)},
        }
    ).encode()
    descriptor, _ = await client.put_manifest(repo, body, mediatypes.OCI_MANIFEST)
    return descriptor


def _formula_signer() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A self-signed certificate with no subject DN and an e-mail a spreadsheet would read as a formula."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("=2+5@example.com")]), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


async def _forge(client: RegistryClient) -> dict[str, str]:
    digests: dict[str, str] = {}
    for repo in ("ok/one", "loop/tags"):
        digests[repo] = (await push_image(client, repo, "1.0", f"sigscope/hostile/{repo}")).digest

    big = await push_image(client, "big/sig", "1.0", "sigscope/hostile/big")
    await _sig_with_big_layers(client, "big/sig", big.digest, BIG)
    mid = await push_image(client, "mid/sig", "1.0", "sigscope/hostile/mid")
    await _sig_with_big_layers(client, "mid/sig", mid.digest, 32 * 1024 * 1024)
    digests["big/sig"], digests["mid/sig"] = big.digest, mid.digest

    # a referrers index (tag schema) that lists the image itself, as a report about it
    image = await push_image(client, "cycle/self", "1.0", "sigscope/hostile/cycle")
    await client.put_manifest("cycle/self", _index(image), mediatypes.OCI_INDEX, referrers_tag(image.digest))
    digests["cycle/self"] = image.digest

    # a chain of reports, each about the one before, twelve deep
    subject = await push_image(client, "cycle/deep", "1.0", "sigscope/hostile/deep")
    digests["cycle/deep"] = subject.digest
    for n in range(12):
        report = await _referrer(client, "cycle/deep", subject, n)
        await client.put_manifest(
            "cycle/deep", _index(report), mediatypes.OCI_INDEX, referrers_tag(subject.digest)
        )
        subject = report

    # an image with one report; the test makes its referrers index list 1,001
    many = await push_image(client, "many/refs", "1.0", "sigscope/hostile/many")
    report = await _referrer(client, "many/refs", many, 0)
    await client.put_manifest("many/refs", _index(report), mediatypes.OCI_INDEX, referrers_tag(many.digest))
    digests["many/refs"] = many.digest

    signed = await push_image(client, "csv/signer", "1.0", "sigscope/hostile/csv")
    key, cert = _formula_signer()
    await push_cosign_signature(client, "csv/signer", signed.digest, signed.digest, key, cert=cert)
    digests["csv/signer"] = signed.digest
    return digests


@pytest.fixture(scope="module")
def hostile(registry_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    handle = start_registry(tmp_path_factory.mktemp("hostile-registry"))
    try:

        async def forge() -> dict[str, str]:
            options = RegistryOptions(insecure=True, use_auth_files=False)
            async with RegistryClient(handle.host, options) as client:
                return await _forge(client)

        yield Hostile(handle, asyncio.run(forge()))
    finally:
        handle.stop()


@pytest.fixture
def proxy(hostile: Hostile) -> Iterator[RegistryProxy]:
    with RegistryProxy(hostile.registry.url) as running:
        yield running
        if os.environ.get("HOSTILE_REPORT"):
            print(f"proxy: {len(running.requests)} requests, {running.streamed_bytes >> 20} MiB streamed")


def scan_json(result: Run) -> dict[str, list[dict[str, Any]]]:
    """Image rows by repository."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in json.loads(result.stdout)["images"]:
        rows.setdefault(row["repository"], []).append(row)
    return rows


# ---------------------------------------------------------------- 1. pagination loops


def test_catalog_link_to_itself_ends_with_an_error_row(proxy: RegistryProxy, tmp_path: Path) -> None:
    proxy.override_header(r"^/v2/_catalog$", "Link", lambda path: f'<{path}>; rel="next"')
    result = run("scan", "registry", proxy.host, "--insecure", "--repo", "ok/*", "-o", "json", tmp=tmp_path)
    assert_sane(result)
    rows = scan_json(result)
    assert rows["ok/one"][0]["tags"] == ["1.0"] and "error" not in rows["ok/one"][0], rows
    [catalog] = rows[""]
    assert "catalog" in catalog["error"] and "repeats a page already read" in catalog["error"], catalog
    assert len(paths(proxy, "/v2/_catalog")) == 1  # the repeat is seen before it is requested

    proxy.requests.clear()
    listed = run("ls", proxy.host, "--insecure", "-o", "json", tmp=tmp_path)
    assert_sane(listed)
    listing = json.loads(listed.stdout)
    assert "ok/one" in [r["name"] for r in listing["repositories"]]
    assert "repeats a page already read" in listing["error"], listing
    assert len(paths(proxy, "/v2/_catalog")) == 1  # the repeat is seen before it is requested


def test_tag_list_handing_out_a_new_last_every_page_ends(proxy: RegistryProxy, tmp_path: Path) -> None:
    counter = itertools.count()
    proxy.override_header(
        r"^/v2/loop/tags/tags/list$",
        "Link",
        lambda path: f'</v2/loop/tags/tags/list?n=1&last=t{next(counter)}>; rel="next"',
    )
    result = run(
        "scan",
        "registry",
        proxy.host,
        "--insecure",
        "--repo",
        "ok/*",
        "--repo",
        "loop/*",
        "-o",
        "json",
        tmp=tmp_path,
    )
    assert_sane(result)
    rows = scan_json(result)
    assert rows["ok/one"][0]["tags"] == ["1.0"], rows
    [loop] = rows["loop/tags"]
    assert "loop/tags" in loop["error"] and "adds no new names" in loop["error"], loop
    assert len(paths(proxy, "/v2/loop/tags/tags/list")) == 2
    # each repository is scanned once, even when the catalog names it twice
    assert len(paths(proxy, "/v2/ok/one/tags/list")) == 1


def test_tag_list_without_end_stops_at_max_pages(proxy: RegistryProxy, tmp_path: Path) -> None:
    pages = itertools.count()

    def page(path: str) -> bytes:
        return json.dumps({"name": "loop/tags", "tags": [f"t{next(pages)}"]}).encode()

    last = itertools.count()
    proxy.tamper(r"^/v2/loop/tags/tags/list$", replace=page)
    proxy.override_header(
        r"^/v2/loop/tags/tags/list$",
        "Link",
        lambda path: f'</v2/loop/tags/tags/list?n=1&last=t{next(last)}>; rel="next"',
    )
    result = run("ls", proxy.host, "--insecure", "--tags", "--max-pages", "20", "-o", "json", tmp=tmp_path)
    assert_sane(result)
    repos = {r["name"]: r for r in json.loads(result.stdout)["repositories"]}
    assert (
        "more than 20 pages" in repos["loop/tags"]["error"] and "--max-pages" in repos["loop/tags"]["error"]
    )
    assert repos["ok/one"]["tags"][0]["digest"], repos
    assert len(paths(proxy, "/v2/loop/tags/tags/list")) == 20


def test_referrers_api_link_to_itself_is_a_problem_of_the_image(hostile: Hostile, tmp_path: Path) -> None:
    with RegistryProxy(hostile.registry.url, referrers_api=True) as proxy:
        proxy.override_header(r"/referrers/", "Link", lambda path: f'<{path}>; rel="next"')
        result = run(
            "scan", "registry", proxy.host, "--insecure", "--repo", "ok/*", "-o", "json", tmp=tmp_path
        )
    assert_sane(result)
    [image] = scan_json(result)["ok/one"]
    assert any("the referrers of ok/one@" in p and "(stopped)" in p for p in image["problems"]), image
    assert len(paths(proxy, "/referrers/")) == 1


# ---------------------------------------------------------------- 4. endless and oversized blobs


def test_signature_layers_claiming_128_mib_are_refused_unread(proxy: RegistryProxy, tmp_path: Path) -> None:
    proxy.stream_body(r"^/v2/big/sig/blobs/", BIG)
    result = run(
        "scan",
        "registry",
        proxy.host,
        "--insecure",
        "--repo",
        "big/*",
        "--repo",
        "ok/*",
        "-o",
        "json",
        tmp=tmp_path,
    )
    assert_sane(result)
    assert result.max_rss < RSS_BOUND, result.max_rss
    report = json.loads(result.stdout)
    signatures = [s for s in report["registry"]["signatures"] if s["repository"] == "big/sig"]
    assert len(signatures) == LAYERS
    assert all(
        "over the 4 MiB limit" in s["error"] and "--max-blob-size" in s["error"] for s in signatures
    ), signatures[0]
    assert proxy.streamed_bytes == 0  # refused on the layer's claim, before a request
    assert scan_json(result)["ok/one"][0]["tags"] == ["1.0"]


def test_endless_blobs_share_one_memory_budget_when_the_cap_is_raised(
    proxy: RegistryProxy, tmp_path: Path
) -> None:
    # 16 layers claiming 32 MiB each, every body endless: each read ends at its claim, and all 16 at once
    # took 16 x 32 MiB
    proxy.stream_body(r"^/v2/mid/sig/blobs/", None)
    result = run(
        "scan",
        "registry",
        proxy.host,
        "--insecure",
        "--repo",
        "mid/*",
        "--max-blob-size",
        "32MiB",
        "-o",
        "json",
        tmp=tmp_path,
    )
    assert_sane(result)
    assert result.max_rss < 200 * 1024 * 1024, result.max_rss
    signatures = json.loads(result.stdout)["registry"]["signatures"]
    assert len(signatures) == LAYERS and all("exceeds" in s["error"] for s in signatures), signatures


# ---------------------------------------------------------------- 6. referrer cycles


def test_referrers_index_listing_the_image_itself(
    hostile: Hostile, proxy: RegistryProxy, tmp_path: Path
) -> None:
    result = run(
        "scan",
        "registry",
        proxy.host,
        "--insecure",
        "--repo",
        "cycle/self",
        "--repo",
        "ok/*",
        "-o",
        "json",
        tmp=tmp_path,
    )
    assert_sane(result)
    rows = scan_json(result)
    [image] = rows["cycle/self"]
    assert any("already visited" in p for p in image["problems"]), image
    assert rows["ok/one"][0]["tags"] == ["1.0"]
    assert len(proxy.requests) < 40, proxy.requests


def test_referrer_chain_stops_at_depth_8(hostile: Hostile, proxy: RegistryProxy, tmp_path: Path) -> None:
    result = run(
        "scan", "registry", proxy.host, "--insecure", "--repo", "cycle/deep", "-o", "json", tmp=tmp_path
    )
    assert_sane(result)
    [image] = scan_json(result)["cycle/deep"]
    assert any("deeper than 8 levels" in p for p in image["problems"]), image
    assert len(paths(proxy, "/manifests/sha256-")) <= 9


def test_referrers_per_subject_are_bounded(hostile: Hostile, proxy: RegistryProxy, tmp_path: Path) -> None:
    subject = hostile.digests["many/refs"]
    entries = [Descriptor(mediatypes.OCI_MANIFEST, f"sha256:{n:064x}", 100) for n in range(1001)]
    _serve_fallback_index(proxy, "many/refs", subject, _index(*entries))
    result = run("scan", "registry", proxy.host, "--insecure", "--repo", "many/*", "-o", "json", tmp=tmp_path)
    assert_sane(result)
    [image] = scan_json(result)["many/refs"]
    assert any("1001 referrers" in p and "first 1000" in p for p in image["problems"]), image
    assert len(image["attachments"]) == 1000


def test_a_referrer_whose_digest_is_a_path_is_never_requested(
    hostile: Hostile, proxy: RegistryProxy, tmp_path: Path
) -> None:
    subject = hostile.digests["many/refs"]
    listed = {
        "mediaType": mediatypes.OCI_MANIFEST,
        "digest": "sha256:../../../_catalog",
        "size": 100,
        "artifactType": "application/vnd.cncf.notary.signature",
    }
    body = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [listed]}).encode()
    _serve_fallback_index(proxy, "many/refs", subject, body)
    result = run("scan", "registry", proxy.host, "--insecure", "--repo", "many/*", "-o", "json", tmp=tmp_path)
    assert_sane(result)
    [signature] = json.loads(result.stdout)["registry"]["signatures"]
    assert "refusing to request reference 'sha256:../../../_catalog'" in signature["error"], signature
    assert len(paths(proxy, "_catalog")) == 1  # the scan's own, not one for the referrer


# ---------------------------------------------------------------- 7 and 9. names with escapes, names as paths

EVIL_REPOS = ["evil\x1b]0;owned\x07/repo", "bad\r\nname", "../../../etc"]
EVIL_TAGS = ["\x1b[2Jwipe", "../../../etc/passwd", "ok\rno"]


def _evil(proxy: RegistryProxy) -> None:
    proxy.tamper(
        r"^/v2/_catalog$", replace=json.dumps({"repositories": ["ok/one", "ok/one", *EVIL_REPOS]}).encode()
    )
    proxy.tamper(
        r"^/v2/ok/one/tags/list$",
        replace=json.dumps({"name": "ok/one", "tags": ["1.0", *EVIL_TAGS]}).encode(),
    )


def _never_requested(proxy: RegistryProxy) -> None:
    for _, path in proxy.requests:
        assert "etc" not in path and "evil" not in path and "bad" not in path and "wipe" not in path, path


@pytest.mark.parametrize("output", ["pretty", "wide", "csv", "json"])
def test_escape_laden_names_are_error_rows_never_requested(
    proxy: RegistryProxy, tmp_path: Path, output: str
) -> None:
    _evil(proxy)
    result = run(
        "scan", "registry", proxy.host, "--insecure", "-o", output, tmp=tmp_path, env={"COLUMNS": "200"}
    )
    # CSV and JSON keep the exact text (escaping is for terminals); the invalid names are in them as data
    assert_sane(result, terminal=output in ("pretty", "wide"))
    _never_requested(proxy)
    assert len(paths(proxy, "/v2/ok/one/tags/list")) == 1  # named twice, scanned once
    if output == "json":
        rows = scan_json(result)
        assert any(row["tags"] == ["1.0"] and row["digest"] for row in rows["ok/one"]), rows["ok/one"]
        errors = [r["error"] for rs in rows.values() for r in rs if r.get("error")]
        assert sum("not a valid repository name" in e for e in errors) == len(EVIL_REPOS), errors
        assert sum("not a valid tag" in e for e in errors) == len(EVIL_TAGS), errors
        # JSON keeps the names exactly (the messages quote them escaped)
        assert sorted(t for row in rows["ok/one"] if row.get("error") for t in row["tags"]) == sorted(
            EVIL_TAGS
        )
    elif output in ("pretty", "wide"):
        assert "\\x1b[2Jwipe" in result.stdout, result.stdout
        assert "ok/one" in result.stdout


def test_ls_escapes_names(proxy: RegistryProxy, tmp_path: Path) -> None:
    _evil(proxy)
    for args in (["ls", proxy.host], ["ls", proxy.host, "--tags"]):
        result = run(*args, "--insecure", tmp=tmp_path, env={"COLUMNS": "200"})
        assert_sane(result)
        assert "\\x1b" in result.stdout and "\\r" in result.stdout, result.stdout
    _never_requested(proxy)


def test_remote_error_messages_are_escaped_on_stderr(proxy: RegistryProxy, tmp_path: Path) -> None:
    proxy.fail(r"/manifests/", 404, 10, method="GET", message="\x1b[2J\x1b]0;owned\x07gone\r\nfake: line")
    result = run("inspect", f"{proxy.host}/ok/one:1.0", "--insecure", tmp=tmp_path)
    assert_sane(result)
    assert_clean_failure(
        subprocess.CompletedProcess([], result.returncode, result.stdout, result.stderr), "\\x1b[2J"
    )


def test_tag_from_the_user_is_checked_before_any_request(proxy: RegistryProxy, tmp_path: Path) -> None:
    key = tmp_path / "cosign.pub"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for extra in (["inspect"], ["verify", "--key", str(key)]):
        result = run(*extra, f"{proxy.host}/ok/one:../../../etc/passwd", "--insecure", tmp=tmp_path)
        assert_clean_failure(
            subprocess.CompletedProcess([], result.returncode, result.stdout, result.stderr), "invalid tag"
        )
    assert proxy.requests == []


# ---------------------------------------------------------------- 8. spreadsheets


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_registry_csv_neutralises_a_formula_signer(proxy: RegistryProxy, tmp_path: Path) -> None:
    result = run("scan", "registry", proxy.host, "--insecure", "--repo", "csv/*", "-o", "csv", tmp=tmp_path)
    assert_sane(result)
    [row] = _csv(result.stdout)
    assert row["subjectname"] == "'=2+5@example.com", row
    assert row["emails"] == "'=2+5@example.com", row
    exact = run("scan", "registry", proxy.host, "--insecure", "--repo", "csv/*", "-o", "json", tmp=tmp_path)
    [signature] = json.loads(exact.stdout)["registry"]["signatures"]
    assert signature["subjectname"] == "=2+5@example.com"


def test_files_csv_neutralises_formula_names(tmp_path: Path) -> None:
    broken = b"Write-Host hi\r\n# SIG # Begin signature block\r\n# MII!!\r\n# SIG # End signature block\r\n"
    names = ["=1+2.ps1", "+1.ps1", "-1.ps1", "@SUM.ps1", "plain.ps1"]
    files = tmp_path / "files"
    files.mkdir()
    for name in names:
        (files / name).write_bytes(broken)
    for name in names:
        result = run("scan", "fs", "-o", "csv", "--", name, tmp=tmp_path, cwd=files)
        assert "Traceback" not in result.stderr
        [row] = _csv(result.stdout)
        assert row["path"] == (name if name == "plain.ps1" else "'" + name), row
        exact = run("scan", "fs", "-o", "json", "--", name, tmp=tmp_path, cwd=files)
        assert [e["path"] for e in json.loads(exact.stdout)["errors"]] == [name]


# ---------------------------------------------------------------- 10. foreign realms


def test_credentials_stay_away_from_a_plain_http_realm_on_another_host(
    registry_bin: str, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """A plain-HTTP registry on 127.0.0.1 whose token service is on 127.0.0.2: the token is asked for
    anonymously (which this service grants for pulls), and the password never leaves."""
    handle = start_registry(
        tmp_path_factory.mktemp("foreign-realm"),
        token=True,
        users={ALICE_USER: ALICE_PASSWORD},
        anonymous_pull=True,
        token_host="127.0.0.2",
    )
    try:
        assert handle.token_server is not None

        # skopeo, like containerd, sends the password to whatever realm the registry names
        layout = tmp_path / "layout"
        build_layout(layout, "1.0", seed="sigscope/foreign-realm")
        push_layout(layout, "1.0", handle.host, "demo/app", "1.0", creds=f"{ALICE_USER}:{ALICE_PASSWORD}")
        handle.token_server.reset_requests()
        result = run(
            "inspect",
            f"{handle.host}/demo/app:1.0",
            "--insecure",
            "-u",
            ALICE_USER,
            "-p",
            ALICE_PASSWORD,
            "-o",
            "json",
            tmp=tmp_path,
        )
        assert_sane(result)
        assert result.returncode == 0, result
        requests = handle.token_server.token_requests
        assert requests and all(r["user"] is None for r in requests), requests
    finally:
        handle.stop()


def test_credentials_stay_away_from_a_plain_http_realm_behind_tls(
    registry_bin: str, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    handle = start_registry(
        tmp_path_factory.mktemp("downgrade-realm"), tls=True, token=True, users={ALICE_USER: ALICE_PASSWORD}
    )
    try:
        assert handle.token_server is not None and handle.ca_file is not None
        result = run(
            "inspect",
            f"{handle.host}/demo/app:1.0",
            "--ca-file",
            str(handle.ca_file),
            "-u",
            ALICE_USER,
            "-p",
            ALICE_PASSWORD,
            tmp=tmp_path,
        )
        assert_sane(result)
        assert_clean_failure(
            subprocess.CompletedProcess([], result.returncode, result.stdout, result.stderr),
            "credentials not sent to token service",
        )
        requests = handle.token_server.token_requests
        assert all(r["user"] is None for r in requests), requests
    finally:
        handle.stop()
