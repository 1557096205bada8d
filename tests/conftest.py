"""Session-scoped fixtures backed by real peers (see tests/testbed and /work/shared/TESTBED.md).

The fixtures are synchronous and session-scoped on purpose, so async tests (pytest-asyncio, function-scoped
loops) can use them. Every registry fixture is a :class:`testbed.RegistryHandle` whose ``images`` maps
``"repo:tag"`` → digest of what was pushed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from testbed import (
    ALICE_PASSWORD,
    ALICE_REFRESH_TOKEN,
    ALICE_USER,
    RegistryHandle,
    TokenServer,
    absent,
    build_layout,
    layout_digest,
    push_layout,
    registry_binary,
    start_registry,
    vectors,
)

if TYPE_CHECKING:
    from testbed.kube import KubeCluster

ALICE = {ALICE_USER: ALICE_PASSWORD}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vectors: reads ../shared/vectors (skipped when absent, failed under CI=true)"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture starts a registry for a test that could not run anyway.
    if item.get_closest_marker("vectors") is not None and not vectors.available():
        vectors.unavailable()


@pytest.fixture(scope="session")
def registry_bin() -> str:
    """Path of ``docker-registry``; skips when it (or skopeo, needed to push images) is not installed."""
    binary = registry_binary()
    if binary is None:
        absent.unavailable(
            "docker-registry not installed (apt-get install -y docker-registry; .ci/run does this)"
        )
    if shutil.which("skopeo") is None:
        absent.unavailable("skopeo not installed (apt-get install -y skopeo; .ci/run does this)")
    return binary


@pytest.fixture(scope="session")
def demo_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OCI layout with tags ``alpine-1.0`` (single manifest) and ``multi-latest`` (amd64+arm64 index)."""
    path = tmp_path_factory.mktemp("demo-layout")
    build_layout(path, "alpine-1.0", seed="demo/alpine:1.0")
    build_layout(path, "multi-latest", seed="demo/multi:latest", architectures=["amd64", "arm64"])
    return path


def _push(
    handle: RegistryHandle,
    layout: Path,
    layout_tag: str,
    ref: str,
    *,
    tls_verify: bool = False,
    cert_dir: Path | None = None,
) -> None:
    repo, _, tag = ref.rpartition(":")
    push_layout(
        layout,
        layout_tag,
        handle.host,
        repo,
        tag,
        tls_verify=tls_verify,
        cert_dir=cert_dir,
        creds=handle.creds,
    )
    handle.images[ref] = layout_digest(layout, layout_tag)


def _serving_demo(handle: RegistryHandle, demo_layout: Path) -> Iterator[RegistryHandle]:
    """A started registry with ``demo/alpine:1.0`` and ``demo/multi:latest`` pushed, stopped afterwards."""
    try:
        _push(handle, demo_layout, "alpine-1.0", "demo/alpine:1.0")
        _push(handle, demo_layout, "multi-latest", "demo/multi:latest")
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def registry(
    registry_bin: str, demo_layout: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryHandle]:
    """Plain-HTTP registry with ``demo/alpine:1.0`` and ``demo/multi:latest`` (an OCI index)."""
    handle = start_registry(tmp_path_factory.mktemp("registry"))
    yield from _serving_demo(handle, demo_layout)


@pytest.fixture(scope="session")
def tls_registry(
    registry_bin: str, demo_layout: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryHandle]:
    """HTTPS registry (private CA in ``ca_file``) with ``demo/alpine:1.0``."""
    workdir = tmp_path_factory.mktemp("tls-registry")
    handle = start_registry(workdir, tls=True)
    try:
        assert handle.ca_file is not None
        cert_dir = workdir / "skopeo-certs"
        cert_dir.mkdir()
        shutil.copy(handle.ca_file, cert_dir / "ca.crt")
        _push(handle, demo_layout, "alpine-1.0", "demo/alpine:1.0", tls_verify=True, cert_dir=cert_dir)
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def basic_registry(
    registry_bin: str, demo_layout: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryHandle]:
    """HTTP registry with htpasswd Basic auth (alice/wonderland) and ``demo/alpine:1.0``."""
    handle = start_registry(tmp_path_factory.mktemp("basic-registry"), htpasswd=ALICE)
    try:
        _push(handle, demo_layout, "alpine-1.0", "demo/alpine:1.0")
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def token_registry(
    registry_bin: str, demo_layout: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryHandle]:
    """HTTP registry with bearer-token auth (``token_server``; alice/wonderland, refresh token
    ``ALICE_REFRESH_TOKEN``) and ``demo/alpine:1.0``."""
    handle = start_registry(
        tmp_path_factory.mktemp("token-registry"),
        token=True,
        users=ALICE,
        refresh_tokens={ALICE_REFRESH_TOKEN: ALICE_USER},
    )
    try:
        _push(handle, demo_layout, "alpine-1.0", "demo/alpine:1.0")
        assert handle.token_server is not None
        handle.token_server.reset_requests()
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def token_server(token_registry: RegistryHandle) -> TokenServer:
    """``token_registry``'s token server with ``token_requests`` emptied for this test."""
    assert token_registry.token_server is not None
    token_registry.token_server.reset_requests()
    return token_registry.token_server


# -- real signatures (testbed/signing.py, testbed/notation_vectors.py) ---------------------------------------
# (imports kept in this section so it stays a pure append)
from testbed import (  # noqa: E402
    CosignKey,
    GpgHome,
    PeerMissing,
    SignedRegistry,
    build_signed_registry,
    ensure_skopeo13,
    make_cosign_key,
)


@pytest.fixture(scope="session")
def skopeo13() -> str:
    """Debian 13 skopeo 1.18 wrapper (cosign-format signing); installs it into ~/.cache/sigscope on first use.

    Skips when it cannot be installed (no route to the Debian mirror); ``SIGSCOPE_SKOPEO13`` overrides.
    """
    try:
        return ensure_skopeo13()
    except PeerMissing as exc:
        absent.unavailable(f"trixie skopeo unavailable (scripts/install-skopeo-trixie.sh): {exc}")


@pytest.fixture(scope="session")
def cosign_key(skopeo13: str, tmp_path_factory: pytest.TempPathFactory) -> CosignKey:
    """A cosign key pair made by ``skopeo generate-sigstore-key`` (passphrase in ``.passphrase``)."""
    return make_cosign_key(skopeo13, tmp_path_factory.mktemp("cosign-key"), "cosign", "sigscope-key-0")


@pytest.fixture(scope="session")
def gpg_home() -> Iterator[GpgHome]:
    """Temporary GNUPGHOME, one ed25519 signing key (``.fingerprint``, ``.key_id``); agent stopped after."""
    if shutil.which("gpg") is None:
        absent.unavailable("gpg not installed (apt-get install -y gnupg; scripts/setup.sh does this)")
    with GpgHome("sigscope test signer <signer@sigscope.test>") as home:
        yield home


@pytest.fixture(scope="session")
def signed_registry(
    registry_bin: str,
    skopeo13: str,
    cosign_key: CosignKey,
    gpg_home: GpgHome,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SignedRegistry]:
    """Plain-HTTP registry with real signatures (:class:`testbed.SignedRegistry`):

    ``signed/cosign:1.0`` (cosign format, ``cosign_key``), ``signed/cosign2:1.0`` (two cosign signatures:
    ``cosign_key`` and a second key), ``signed/gpg:1.0`` (GPG simple signing, stock skopeo, in
    ``lookaside_dir``), ``signed/notation:1.0`` (notation-go COSE vector + referrers fallback tag),
    ``plain/unsigned:1.0`` and ``signed/multi:1.0`` (amd64+arm64 index signed at the index digest).
    """
    workdir = tmp_path_factory.mktemp("signed-registry")
    second = make_cosign_key(skopeo13, workdir / "keys", "cosign-1", "sigscope-key-1")
    signed = build_signed_registry(workdir, skopeo13=skopeo13, cosign_keys=[cosign_key, second], gpg=gpg_home)
    try:
        yield signed
    finally:
        signed.stop()


# -- RFC 3161 time-stamping authority (testbed/tsa.py: openssl ts behind a loopback HTTP front end) ----------
from testbed.pki import PKI, build_pki  # noqa: E402
from testbed.tsa import TSAServer  # noqa: E402


@pytest.fixture(scope="session")
def tsa_pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """A fresh code-signing/timestamping PKI (testbed.pki.build_pki) in a session tmp dir."""
    if shutil.which("openssl") is None:
        absent.unavailable("openssl not installed (apt-get install -y openssl)")
    return build_pki(tmp_path_factory.mktemp("tsa-pki"))


@pytest.fixture(scope="session")
def tsa(tsa_pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TSAServer]:
    """A real RFC 3161 TSA (``openssl ts -reply``, entity ``tsa``) at ``tsa.url``; ``root_path`` trusts it."""
    with TSAServer(tsa_pki.dir, "tsa", tmp_path_factory.mktemp("tsa")) as server:
        yield server


# -- registries built from the Go module proxy (testbed/peers.py, scripts/install-peers.sh) ---------------
from testbed import peers, start_olareg  # noqa: E402


def _skopeo_for_pushing() -> None:
    if shutil.which("skopeo") is None:
        absent.unavailable("skopeo not installed (apt-get install -y skopeo; scripts/setup.sh does this)")


@pytest.fixture(scope="session")
def referrers_registry(
    demo_layout: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryHandle]:
    """Plain-HTTP olareg (regclient's registry), which answers the OCI 1.1 referrers API
    (``GET /v2/<name>/referrers/<digest>``) but keeps no ``_catalog``; with ``demo/alpine:1.0`` and
    ``demo/multi:latest``."""
    binary = peers.peer("olareg")
    _skopeo_for_pushing()
    handle = start_olareg(tmp_path_factory.mktemp("referrers-registry"), binary)
    yield from _serving_demo(handle, demo_layout)


@pytest.fixture(scope="session")
def distribution_registry(
    demo_layout: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryHandle]:
    """Plain-HTTP distribution v3 ``registry serve`` (Debian 2.8's config shape; like 2.8, no referrers API)
    with ``demo/alpine:1.0`` and ``demo/multi:latest``."""
    binary = peers.peer("registry")
    _skopeo_for_pushing()
    handle = start_registry(tmp_path_factory.mktemp("distribution-registry"), binary=binary)
    yield from _serving_demo(handle, demo_layout)


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A real kube-apiserver with its etcd on loopback (no kubelet, no controllers), shared by the session;
    admin client via ``kube.client()``. Skips (fails under CI=true) when the peers are not built."""
    from testbed.kube import start_cluster  # the kubernetes client costs 0.3 s to import: only when used

    with start_cluster(tmp_path_factory.mktemp("kube")) as cluster:
        yield cluster
