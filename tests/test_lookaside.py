"""Lookaside stores and registries.d: precedence, file:// round trips, HTTP reads, skopeo interop."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from testbed import RegistryHandle, absent, refused_port

from sigscope.errors import SigscopeError, TooLargeError, UnreachableError, UsageError
from sigscope.formats import simplesigning
from sigscope.model import Status
from sigscope.sources import lookaside
from sigscope.sources.lookaside import (
    LookasideError,
    RegistriesD,
    load_registries_d,
    read_signatures,
    signature_url,
    write_signature,
)

DIGEST = "sha256:" + "817a" * 16
HEX = DIGEST.removeprefix("sha256:")


def write_yaml(directory: Path, name: str, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)


# ----------------------------------------------------------------------------- registries.d


@pytest.fixture
def config(tmp_path: Path) -> RegistriesD:
    d = tmp_path / "registries.d"
    write_yaml(
        d,
        "default.yaml",
        """
default-docker:
  lookaside: https://default.example/sigs
  lookaside-staging: file:///staging/default
""",
    )
    write_yaml(
        d,
        "example.yaml",
        f"""
docker:
  registry.example.com:
    lookaside: https://host.example/sigs
    use-sigstore-attachments: true
  registry.example.com/team:
    lookaside: https://team.example/sigs
    lookaside-staging: file:///staging/team
  registry.example.com/team/app:
    use-sigstore-attachments: false
  registry.example.com/team/app:dev:
    sigstore: https://dev.example/sigs
  registry.example.com/team/app@sha256:{HEX}:
    lookaside: https://pinned.example/sigs
  "*.example.org":
    lookaside: https://wild.example/sigs
  "mirror.example.org:5000":
    lookaside: https://port.example/sigs
""",
    )
    write_yaml(d, "notes.txt", "docker: [this is not read]")  # only *.yaml files count
    write_yaml(d, "other.yml", "default-docker: {lookaside: https://yml.example}")
    return load_registries_d(d)


@pytest.mark.parametrize(
    ("registry", "repository", "extra", "expected"),
    [
        (
            "registry.example.com",
            "team/app",
            {},
            "https://team.example/sigs",
        ),  # app sets no URL: falls through
        ("registry.example.com", "team/app", {"tag": "dev"}, "https://dev.example/sigs"),  # `sigstore` alias
        ("registry.example.com", "team/app", {"tag": "prod"}, "https://team.example/sigs"),
        ("registry.example.com", "team/app", {"digest": DIGEST}, "https://pinned.example/sigs"),
        ("registry.example.com", "team/other/deep", {}, "https://team.example/sigs"),
        ("registry.example.com", "teammate/app", {}, "https://host.example/sigs"),  # whole components only
        ("registry.example.com", "library/busybox", {}, "https://host.example/sigs"),
        ("a.b.example.org", "x", {}, "https://wild.example/sigs"),
        ("mirror.example.org:5000", "x", {}, "https://port.example/sigs"),
        (
            "mirror.example.org:6000",
            "x",
            {},
            "https://wild.example/sigs",
        ),  # the port-less wildcard still applies
        ("example.org", "x", {}, "https://default.example/sigs"),  # "*.example.org" needs a subdomain
        ("docker.io", "library/busybox", {}, "https://default.example/sigs"),
    ],
)
def test_lookaside_precedence(
    config: RegistriesD, registry: str, repository: str, extra: dict[str, str], expected: str
) -> None:
    assert config.lookaside_for(registry, repository, **extra) == expected


def test_staging_is_for_writing(config: RegistriesD) -> None:
    assert config.lookaside_for("registry.example.com", "team/app", write=True) == "file:///staging/team"
    # The tag scope sets `sigstore` only: for writing that beats the namespace's staging URL.
    assert (
        config.lookaside_for("registry.example.com", "team/app", tag="dev", write=True)
        == "https://dev.example/sigs"
    )
    assert config.lookaside_for("quay.io", "x", write=True) == "file:///staging/default"
    assert config.lookaside_for("registry.example.com", "zzz", write=True) == "https://host.example/sigs"


def test_use_sigstore_attachments(config: RegistriesD) -> None:
    assert config.use_sigstore_attachments("registry.example.com", "team/app") is False
    assert config.use_sigstore_attachments("registry.example.com", "team/other") is True  # from the host
    assert config.use_sigstore_attachments("quay.io", "x") is False


def test_scopes_order() -> None:
    assert lookaside.scopes("registry.example.com:5000", "ns/repo", tag="v1") == [
        "registry.example.com:5000/ns/repo:v1",
        "registry.example.com:5000/ns/repo",
        "registry.example.com:5000/ns",
        "registry.example.com:5000",
        "*.example.com",
        "*.com",
    ]
    # c/image cannot name an image that has both a tag and a digest: no exact scope then.
    assert lookaside.scopes("localhost:5000", "r", tag="t", digest=DIGEST) == [
        "localhost:5000/r",
        "localhost:5000",
    ]
    assert lookaside.scopes("index.docker.io", "library/x")[0] == "docker.io/library/x"


def test_missing_directory_is_empty(tmp_path: Path) -> None:
    config = load_registries_d(tmp_path / "absent")
    assert config.lookaside_for("quay.io", "x") is None
    assert config.use_sigstore_attachments("quay.io", "x") is False


def test_empty_and_null_sections(tmp_path: Path) -> None:
    write_yaml(tmp_path, "a.yaml", "")
    write_yaml(tmp_path, "b.yaml", "default-docker:\ndocker:\n")
    write_yaml(tmp_path, "c.yaml", "default-docker:\n  lookaside: file:///x\ndocker:\n  quay.io:\n")
    config = load_registries_d(tmp_path)  # an empty `default-docker:` neither configures nor conflicts
    assert config.lookaside_for("quay.io", "x") == "file:///x"
    assert "quay.io" in config.docker


def test_keys_match_case_insensitively_like_go(tmp_path: Path) -> None:
    write_yaml(tmp_path, "a.yaml", "Docker:\n  quay.io:\n    LookAside: https://q.example\n")
    assert load_registries_d(tmp_path).lookaside_for("quay.io", "x") == "https://q.example"


@pytest.mark.parametrize(
    ("files", "words"),
    [
        (
            {"a.yaml": "docker:\n  quay.io:\n    lookaside: x\n", "b.yaml": "docker:\n  quay.io: {}\n"},
            "'quay.io'",
        ),
        (
            {"a.yaml": "default-docker: {lookaside: x}", "b.yaml": "default-docker: {sigstore: y}"},
            "default-docker",
        ),
        ({"a.yaml": "docker: [unclosed"}, "not valid YAML"),
        ({"a.yaml": "- a list"}, "must be a YAML mapping"),
        ({"a.yaml": "docker: [quay.io]"}, "mapping of scopes"),
        ({"a.yaml": "docker:\n  quay.io: text\n"}, "must be a mapping"),
        ({"a.yaml": "docker:\n  quay.io:\n    lookaside: 5\n"}, "must be a URL string"),
        ({"a.yaml": "docker:\n  quay.io:\n    use-sigstore-attachments: maybe\n"}, "true or false"),
        ({"a.yaml": b"\xff\xfe"}, "cannot read"),
    ],
)
def test_bad_registries_d(tmp_path: Path, files: dict[str, str | bytes], words: str) -> None:
    for name, content in files.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    with pytest.raises(UsageError) as info:
        load_registries_d(tmp_path)
    assert words in str(info.value)
    assert str(tmp_path) in str(info.value)  # the message names the file(s)


def test_registries_d_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="not a directory"):
        load_registries_d(tmp_path / "f")


def test_defaults(tmp_path: Path) -> None:
    assert lookaside.default_lookaside(euid=0) == "file:///var/lib/containers/sigstore"
    assert (
        lookaside.default_lookaside(euid=1000, home=tmp_path)
        == (tmp_path / ".local/share/containers/sigstore").as_uri()
    )
    assert lookaside.default_registries_d(home=tmp_path) == Path("/etc/containers/registries.d")
    (tmp_path / ".config/containers/registries.d").mkdir(parents=True)
    assert lookaside.default_registries_d(home=tmp_path) == tmp_path / ".config/containers/registries.d"


# ----------------------------------------------------------------------------- URLs and names


def test_signature_url_matches_the_documented_layout() -> None:
    assert (
        signature_url("https://example.com/lookaside", "library/busybox", DIGEST, 1)
        == f"https://example.com/lookaside/library/busybox@sha256={HEX}/signature-1"
    )
    assert (
        signature_url("file:///var/lib/containers/sigstore", "a/b", DIGEST, 12)
        == f"file:///var/lib/containers/sigstore/a/b@sha256={HEX}/signature-12"
    )
    # c/image does not trim a trailing slash; neither do we, so both ask for the same URL.
    assert signature_url("https://x.example/", "r", DIGEST, 1).startswith("https://x.example//r@")


@pytest.mark.parametrize(
    ("repository", "digest"),
    [
        ("../etc", DIGEST),
        ("a/../../b", DIGEST),
        ("/abs", DIGEST),
        ("a//b", DIGEST),
        ("Upper", DIGEST),
        ("a?b", DIGEST),
        ("a", "sha256:../../../etc/passwd"),
        ("a", "sha256:" + "0" * 63),
        ("a", "sha256:" + "A" * 64),
        ("a", "md5:" + "0" * 32),
        ("a", DIGEST + "/../x"),
    ],
)
def test_path_traversal_is_refused(tmp_path: Path, repository: str, digest: str) -> None:
    base = tmp_path.as_uri()
    with pytest.raises(UsageError):
        signature_url(base, repository, digest, 1)
    with pytest.raises(UsageError):
        write_signature(base, repository, digest, b"x")
    assert list(tmp_path.iterdir()) == []


async def test_path_traversal_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        await read_signatures(tmp_path.as_uri(), "../x", DIGEST)


@pytest.mark.parametrize(
    "base", ["ftp://x.example/s", "/plain/path", "file://otherhost/x", "https:///nohost"]
)
def test_unsupported_bases(base: str) -> None:
    with pytest.raises(UsageError):
        signature_url(base, "r", DIGEST, 1)


def test_index_must_be_positive() -> None:
    with pytest.raises(UsageError):
        signature_url("file:///x", "r", DIGEST, 0)


# ----------------------------------------------------------------------------- file://


async def test_file_round_trip(tmp_path: Path) -> None:
    base = (tmp_path / "store").as_uri()
    blobs = [b"first", b"second", b"third"]
    urls = [write_signature(base, "ns/app", DIGEST, blob) for blob in blobs]
    assert urls == [signature_url(base, "ns/app", DIGEST, n) for n in (1, 2, 3)]
    directory = tmp_path / "store" / "ns" / f"app@sha256={HEX}"
    assert sorted(p.name for p in directory.iterdir()) == ["signature-1", "signature-2", "signature-3"]
    assert (directory / "signature-1").stat().st_mode & 0o777 == 0o644
    assert await read_signatures(base, "ns/app", DIGEST) == list(zip(urls, blobs, strict=True))
    # Another digest, another repository: nothing.
    assert await read_signatures(base, "ns/app", "sha256:" + "0" * 64) == []
    assert await read_signatures(base, "ns/other", DIGEST) == []


async def test_gap_stops_reading_and_is_filled_by_writing(tmp_path: Path) -> None:
    base = tmp_path.as_uri()
    for blob in (b"1", b"2", b"3"):
        write_signature(base, "r", DIGEST, blob)
    directory = tmp_path / f"r@sha256={HEX}"
    (directory / "signature-2").unlink()
    assert [b for _, b in await read_signatures(base, "r", DIGEST)] == [b"1"]
    assert write_signature(base, "r", DIGEST, b"new").endswith("/signature-2")
    assert [b for _, b in await read_signatures(base, "r", DIGEST)] == [b"1", b"new", b"3"]


async def test_file_read_limits(tmp_path: Path) -> None:
    base = tmp_path.as_uri()
    for n in range(3):
        write_signature(base, "r", DIGEST, b"x" * (10 + n))
    assert len(await read_signatures(base, "r", DIGEST, max_signatures=3)) == 3
    with pytest.raises(LookasideError, match="more than 2 signatures"):
        await read_signatures(base, "r", DIGEST, max_signatures=2)
    with pytest.raises(TooLargeError):
        await read_signatures(base, "r", DIGEST, max_size=11)


async def test_file_errors_other_than_missing_are_errors(tmp_path: Path) -> None:
    base = tmp_path.as_uri()
    (tmp_path / f"r@sha256={HEX}" / "signature-1").mkdir(parents=True)
    with pytest.raises(LookasideError, match="cannot read signature"):
        await read_signatures(base, "r", DIGEST)


def test_write_refuses_http_and_empty_blobs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="lookaside over HTTP is read-only") as info:
        write_signature("https://user:secret@example.com/sigs", "r", DIGEST, b"x")
    assert "secret" not in str(info.value)
    with pytest.raises(UsageError, match="empty"):
        write_signature(tmp_path.as_uri(), "r", DIGEST, b"")


def test_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_signature(tmp_path.as_uri(), "r", DIGEST, b"x")
    assert [p.name for p in (tmp_path / f"r@sha256={HEX}").iterdir()] == ["signature-1"]


# ----------------------------------------------------------------------------- http://


@dataclass
class StaticServer:
    root: Path
    base: str = ""
    requests: list[str] = field(default_factory=list)


@pytest.fixture
async def http_store(tmp_path: Path) -> AsyncIterator[StaticServer]:
    """A plain static file server on 127.0.0.1 (what a lookaside web server is), plus a few faults."""
    server = StaticServer(root=tmp_path / "www")
    server.root.mkdir()

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        server.requests.append("/" + path)
        if path.startswith("broken/"):
            return web.Response(status=500, text="storage backend exploded\nsecond line")
        if path.startswith("forbidden/"):
            return web.Response(status=403, text="AccessDenied")
        if path.startswith("huge/"):
            return web.Response(body=b"x" * 2048)
        if path.startswith("endless/"):
            return web.Response(body=b"again")
        file = (server.root / path).resolve()
        if not file.is_relative_to(server.root.resolve()) or not file.is_file():
            return web.Response(status=404, text="404: Not Found")
        return web.Response(body=file.read_bytes(), content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/{path:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.base = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


async def test_http_read(http_store: StaticServer) -> None:
    file_base = (http_store.root / "sigs").as_uri()
    for blob in (b"one", b"two"):
        write_signature(file_base, "library/busybox", DIGEST, blob)
    base = f"{http_store.base}/sigs"
    found = await read_signatures(base, "library/busybox", DIGEST)
    assert found == [
        (f"{base}/library/busybox@sha256={HEX}/signature-1", b"one"),
        (f"{base}/library/busybox@sha256={HEX}/signature-2", b"two"),
    ]
    # It stopped at the first 404.
    assert http_store.requests[-1] == f"/sigs/library/busybox@sha256={HEX}/signature-3"
    async with aiohttp.ClientSession() as session:
        assert await read_signatures(base, "library/busybox", DIGEST, session=session) == found
    assert await read_signatures(base, "library/other", DIGEST) == []


async def test_http_500_is_a_clear_error(http_store: StaticServer) -> None:
    with pytest.raises(LookasideError) as info:
        await read_signatures(f"{http_store.base}/broken", "r", DIGEST)
    assert info.value.status == 500
    assert "HTTP 500" in str(info.value) and "storage backend exploded" in str(info.value)
    assert "second line" not in str(info.value)
    assert isinstance(info.value, SigscopeError)


async def test_http_403_is_not_taken_for_missing(http_store: StaticServer) -> None:
    # S3 answers 403 for absent keys without list permission; c/image fails there too, so must we.
    with pytest.raises(LookasideError, match="HTTP 403"):
        await read_signatures(f"{http_store.base}/forbidden", "r", DIGEST)


async def test_http_limits(http_store: StaticServer) -> None:
    with pytest.raises(TooLargeError):
        await read_signatures(f"{http_store.base}/huge", "r", DIGEST, max_size=1024)
    with pytest.raises(LookasideError, match="more than 5 signatures"):
        await read_signatures(f"{http_store.base}/endless", "r", DIGEST, max_signatures=5)
    assert len(http_store.requests) == 1 + 6


async def test_http_unreachable() -> None:
    base = f"http://user:secret@127.0.0.1:{refused_port()}/sigs"
    with pytest.raises(UnreachableError) as info:
        await read_signatures(base, "r", DIGEST)
    assert "secret" not in str(info.value)


# ----------------------------------------------------------------------------- skopeo interop


@dataclass
class Signer:
    home: Path
    fingerprint: str
    key_id: str
    public_key: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "GNUPGHOME": str(self.home)}


@pytest.fixture(scope="module")
def signer() -> Iterator[Signer]:
    """A throwaway GPG signing key (private GNUPGHOME, no passphrase); its agent is stopped afterwards."""
    if shutil.which("gpg") is None:
        absent.unavailable("gpg not installed (apt-get install -y gnupg)")
    home = Path(tempfile.mkdtemp(prefix="lagpg-"))  # short: gpg-agent's socket path has a length limit
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        subprocess.run(
            [
                "gpg",
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                "lookaside <la@sigscope.test>",
                "ed25519",
            ],
            env=env,
            capture_output=True,
            check=True,
        )
        listing = subprocess.run(
            ["gpg", "--batch", "--list-keys", "--with-colons"],
            env=env,
            capture_output=True,
            check=True,
            text=True,
        ).stdout.splitlines()
        key_id = next(line.split(":")[4] for line in listing if line.startswith("pub:"))
        fingerprint = next(line.split(":")[9] for line in listing if line.startswith("fpr:"))
        public_key = home / "public.gpg"
        public_key.write_bytes(
            subprocess.run(
                ["gpg", "--batch", "--export", fingerprint], env=env, capture_output=True, check=True
            ).stdout
        )
        yield Signer(home, fingerprint, key_id, public_key)
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def skopeo(signer: Signer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], env=signer.env(), capture_output=True, text=True, check=check)


async def test_skopeo_writes_what_we_read_and_reads_what_we_write(
    registry: RegistryHandle, signer: Signer, tmp_path: Path
) -> None:
    store = tmp_path / "lookaside"
    registries_d = tmp_path / "registries.d"
    write_yaml(registries_d, "test.yaml", f'docker:\n  "{registry.host}":\n    lookaside: {store.as_uri()}\n')
    config = load_registries_d(registries_d)
    base = config.lookaside_for(registry.host, "demo/signed")
    assert base == store.as_uri()
    digest = registry.images["demo/alpine:1.0"]
    source = f"docker://{registry.host}/demo/alpine:1.0"
    common = ["--registries.d", str(registries_d), "--src-tls-verify=false", "--dest-tls-verify=false"]

    # skopeo signs while copying and stores the signature in the lookaside; we read and parse it.
    target = f"{registry.host}/demo/signed:1.0"
    skopeo(
        signer,
        "copy",
        "--insecure-policy",
        *common,
        "--sign-by",
        signer.fingerprint,
        source,
        f"docker://{target}",
    )
    found = await read_signatures(base, "demo/signed", digest)
    assert [url for url, _ in found] == [signature_url(base, "demo/signed", digest, 1)]
    sig = simplesigning.parse_signature(
        found[0][1], subject_digest=digest, location=found[0][0], now=datetime.now(UTC)
    )
    assert sig.signer is not None and sig.signer.pgp is not None
    assert sig.signer.pgp.key_id == signer.key_id
    assert sig.claims["docker-reference"] == target
    assert sig.status is Status.UNVERIFIED

    # We store a signature; skopeo's signedBy policy finds it in the lookaside and accepts the image.
    verified = f"{registry.host}/demo/verified"
    skopeo(signer, "copy", "--insecure-policy", *common, source, f"docker://{verified}:1.0")
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "default": [{"type": "reject"}],
                "transports": {
                    "docker": {
                        verified: [
                            {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(signer.public_key)}
                        ]
                    }
                },
            }
        )
    )
    pull = ["copy", "--policy", str(policy), "--registries.d", str(registries_d), "--src-tls-verify=false"]
    refused = skopeo(signer, *pull, f"docker://{verified}:1.0", f"dir:{tmp_path / 'out1'}", check=False)
    assert refused.returncode != 0 and "signature" in refused.stderr.lower()

    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(
        subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{verified}:1.0"],
            capture_output=True,
            check=True,
        ).stdout
    )
    assert "sha256:" + hashlib.sha256(manifest.read_bytes()).hexdigest() == digest
    blob_file = tmp_path / "signature"
    skopeo(
        signer,
        "standalone-sign",
        str(manifest),
        f"{verified}:1.0",
        signer.fingerprint,
        "--output",
        str(blob_file),
    )
    url = write_signature(base, "demo/verified", digest, blob_file.read_bytes())
    assert url == signature_url(base, "demo/verified", digest, 1)
    skopeo(signer, *pull, f"docker://{verified}:1.0", f"dir:{tmp_path / 'out2'}")
    assert (tmp_path / "out2" / "signature-1").read_bytes() == blob_file.read_bytes()
