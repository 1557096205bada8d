"""RFC 3161: the loopback TSA (openssl ts), token parsing and verification, and fetching from a TSA URL.

Every token here comes from OpenSSL (`openssl ts -reply`, or `openssl cms -sign -cades` for what openssl ts
refuses to sign); the accepting cases are cross-checked with `openssl ts -verify` and rfc3161-client.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms, tsp
from cryptography import x509
from testbed.pki import PKI
from testbed.tsa import OTHER_POLICY, QUERY_TYPE, REPLY_TYPE, TSAServer

from sigscope.errors import IntegrityError, SigscopeError, TooLargeError, UsageError
from sigscope.model import Outcome
from sigscope.sources.tsa import TSAError, TSAMismatch, TSAUnreachable, fetch_timestamp
from sigscope.trust import timestamp as ts

DATA = b"the signature bytes a timestamp vouches for"
TESTS = Path(__file__).parent


def _post(url: str, body: bytes, content_type: str = QUERY_TYPE) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def _stamp(server: TSAServer, data: bytes = DATA, **kwargs: object) -> tuple[ts.TimestampRequest, bytes]:
    request = ts.build_request(data, **kwargs)  # type: ignore[arg-type]
    status, content_type, body = _post(server.url, request.der)
    assert status == 200 and content_type == REPLY_TYPE, body
    return request, body


def _root(server: TSAServer) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(server.root_path.read_bytes())]


def _outcomes(result: ts.TimestampVerification) -> dict[str, Outcome]:
    return {c.name: c.outcome for c in result.checks}


@pytest.fixture(scope="module")
def servers(tsa_pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TSAServer]]:
    """One TSA per flavour: RSA (ESSCertIDv2), EC, RSA with ESSCertID v1, RSA-PSS, and no timeStamping EKU."""
    flavours: dict[str, tuple[str, dict[str, object]]] = {
        "ec": ("ec-tsa", {}),
        "ess-v1": ("tsa", {"ess_cert_id_alg": "sha1"}),
        "pss": ("tsa", {"rsa_pss": True}),
        "no-eku": ("tsa-no-eku", {}),
    }
    started: dict[str, TSAServer] = {}
    try:
        for name, (entity, kwargs) in flavours.items():
            workdir = tmp_path_factory.mktemp(f"tsa-{name}")
            started[name] = TSAServer(tsa_pki.dir, entity, workdir, **kwargs).start()  # type: ignore[arg-type]
        yield started
    finally:
        for server in started.values():
            server.stop()


# ---------------------------------------------------------------- the testbed TSA against openssl


@pytest.mark.parametrize("flavour", ["rsa", "ec"])
def test_testbed_tsa_answers_openssl_ts_query(
    flavour: str, tsa: TSAServer, servers: dict[str, TSAServer], tmp_path: Path
) -> None:
    server = tsa if flavour == "rsa" else servers["ec"]
    (tmp_path / "data").write_bytes(DATA)
    subprocess.run(
        ["openssl", "ts", "-query", "-data", str(tmp_path / "data"), "-sha256", "-cert", "-out", "q.tsq"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    status, content_type, body = _post(server.url, (tmp_path / "q.tsq").read_bytes())
    assert (status, content_type) == (200, REPLY_TYPE)
    (tmp_path / "r.tsr").write_bytes(body)
    verify = [
        "openssl", "ts", "-verify", "-in", "r.tsr", "-queryfile", "q.tsq", "-CAfile", str(server.root_path),
    ]  # fmt: skip
    ok = subprocess.run(verify, cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr
    # and the same reply does not verify over other data
    (tmp_path / "other").write_bytes(DATA + b"!")
    bad = subprocess.run(
        ["openssl", "ts", "-verify", "-in", "r.tsr", "-data", "other", "-CAfile", str(server.root_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0


def test_testbed_tsa_interface(tsa: TSAServer, tsa_pki: PKI) -> None:
    assert tsa.url.startswith("http://127.0.0.1:") and tsa.url.endswith("/")
    assert tsa.root_path == tsa_pki.dir / "root.crt"
    assert tsa.cert_path == tsa_pki["tsa"].cert_path
    chain = tsa.chain_path.read_bytes()
    assert chain.count(b"BEGIN CERTIFICATE") == 2 and chain.endswith(tsa.root_path.read_bytes())


def test_testbed_tsa_http_errors(tsa: TSAServer) -> None:
    request = ts.build_request(DATA)
    assert _post(tsa.url, request.der, "application/octet-stream")[0] == 415
    assert _post(tsa.url + "nope", request.der)[0] == 404


def test_testbed_tsa_runs_as_module(tsa_pki: PKI, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed.tsa", str(tsa_pki.dir), "ec-tsa"],
        cwd=TESTS,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        request, body = ts.build_request(DATA), b""
        status, _, body = _post(url, request.der)
        assert status == 200
        token = ts.parse_response(body)
        assert token.signer is not None and "EC TSA" in token.signer.subject.rfc4514_string()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---------------------------------------------------------------- requests and responses


def test_request_is_what_openssl_reads(tmp_path: Path) -> None:
    request = ts.build_request(DATA, nonce=0x1234567890ABCDEF)
    (tmp_path / "q.tsq").write_bytes(request.der)
    text = subprocess.run(
        ["openssl", "ts", "-query", "-in", "q.tsq", "-text"], cwd=tmp_path, capture_output=True, text=True
    ).stdout
    assert "Hash Algorithm: sha256" in text
    assert "Nonce: 0x1234567890ABCDEF" in text
    assert "Certificate required: yes" in text
    assert request.digest == hashlib.sha256(DATA).digest()


def test_requests_get_fresh_nonces() -> None:
    assert ts.build_request(DATA).nonce != ts.build_request(DATA).nonce


def test_parse_response_facts(tsa: TSAServer) -> None:
    request, body = _stamp(tsa)
    token = ts.parse_response(body)
    assert token.response_der == body
    assert token.hash_algorithm == "sha256" and token.imprint == hashlib.sha256(DATA).digest()
    assert token.nonce == request.nonce
    assert token.policy == "1.2.3.4.1"
    assert token.accuracy == timedelta(seconds=1, milliseconds=500, microseconds=100)
    assert abs(token.gen_time - datetime.now(UTC)) < timedelta(minutes=5)
    assert token.signer is not None and token.signer.subject.rfc4514_string().startswith(
        "CN=sigscope Test TSA"
    )
    assert len(token.certificates) == 2  # the TSA and the root, as the openssl config's certs= says
    assert token.tsa_name is not None and "sigscope Test TSA" in token.tsa_name
    claims = token.claims()
    assert claims["tsa"].startswith("CN=sigscope Test TSA") and claims["serial"] == token.serial_hex
    # a bare token (what Notary and file signatures carry) parses to the same facts
    bare = ts.parse_token(token.der)
    assert (bare.gen_time, bare.serial, bare.signer) == (token.gen_time, token.serial, token.signer)


def test_rejected_status_is_an_error(tsa: TSAServer) -> None:
    # openssl ts refuses a policy it does not serve with a real rejection response
    _, body = _stamp(tsa, policy="1.2.3.99")
    with pytest.raises(ts.TimestampRejected) as caught:
        ts.parse_response(body)
    assert caught.value.status == "rejection"
    assert "unaccepted_policy" in str(caught.value)
    # a policy it does serve is granted
    _, granted = _stamp(tsa, policy=OTHER_POLICY)
    assert ts.parse_response(granted).policy == OTHER_POLICY


@pytest.mark.parametrize("blob", [b"", b"garbage", b"\x30\x03\x02\x01\x00"])
def test_malformed_response(blob: bytes) -> None:
    with pytest.raises(ts.TimestampError):
        ts.parse_response(blob)


def test_trailing_bytes_refused(tsa: TSAServer) -> None:
    _, body = _stamp(tsa)
    with pytest.raises(ts.TimestampError):
        ts.parse_response(body + b"\x00")


# ---------------------------------------------------------------- verification: accepted


@pytest.mark.parametrize("flavour", ["rsa", "ec", "ess-v1", "pss"])
def test_verify_good_tokens(flavour: str, tsa: TSAServer, servers: dict[str, TSAServer]) -> None:
    server = tsa if flavour == "rsa" else servers[flavour]
    request, body = _stamp(server)
    token = ts.parse_response(body)
    result = ts.verify_timestamp(token, DATA, _root(server), nonce=request.nonce)
    assert result.ok, result.detail
    assert _outcomes(result) == {
        name: Outcome.PASSED
        for name in (ts.CHECK_IMPRINT, ts.CHECK_SIGNATURE, ts.CHECK_SIGNER, ts.CHECK_CHAIN, ts.CHECK_NONCE)
    }
    assert result.time == token.gen_time
    info = result.tsa(datetime.now(UTC))
    assert info is not None and info.eku == ("timeStamping",)
    assert len(result.chain) == 2
    if flavour == "ec":
        assert info.key_type == "ECDSA"
    if flavour == "pss":
        assert token.signer_info["signature_algorithm"].signature_algo == "rsassa_pss"
    if flavour == "ess-v1":
        assert "ESSCertID " in dict((c.name, c.detail) for c in result.checks)[ts.CHECK_SIGNER]


@pytest.mark.parametrize("flavour", ["rsa", "ec"])
def test_rfc3161_client_agrees(flavour: str, tsa: TSAServer, servers: dict[str, TSAServer]) -> None:
    """An independent verifier (trailofbits rfc3161-client) accepts what we accept, and refuses other data."""
    import rfc3161_client

    server = tsa if flavour == "rsa" else servers[flavour]
    request, body = _stamp(server)
    assert ts.verify_timestamp(ts.parse_response(body), DATA, _root(server)).ok
    response = rfc3161_client.decode_timestamp_response(body)
    verifier = (
        rfc3161_client.VerifierBuilder()
        .add_root_certificate(_root(server)[0])
        .nonce(request.nonce or 0)
        .build()
    )
    assert verifier.verify_message(response, DATA)
    with pytest.raises(rfc3161_client.VerificationError):
        verifier.verify_message(response, DATA + b"!")


def test_token_without_certificates_needs_the_tsa_certificate(tsa: TSAServer) -> None:
    _, body = _stamp(tsa, cert_req=False)
    token = ts.parse_response(body)
    assert token.certificates == () and token.signer is None
    alone = ts.verify_timestamp(token, DATA, _root(tsa))
    assert not alone.ok and "carry the signer" in alone.detail
    tsa_cert = x509.load_pem_x509_certificate(tsa.cert_path.read_bytes())
    result = ts.verify_timestamp(token, DATA, _root(tsa), intermediates=[tsa_cert])
    assert result.ok, result.detail


def test_split_trust_chain(tsa: TSAServer) -> None:
    from sigscope.trust.certs import load_pem_chain

    chain = load_pem_chain(tsa.chain_path.read_bytes())
    roots, others = ts.split_trust_chain(chain)
    assert roots == _root(tsa) and others == chain[:1]


# ---------------------------------------------------------------- verification: refused, each by name


def test_wrong_data_fails_the_imprint_only(tsa: TSAServer) -> None:
    _, body = _stamp(tsa)
    result = ts.verify_timestamp(ts.parse_response(body), DATA + b"x", _root(tsa))
    assert not result.ok and not result.consistent
    assert [c.name for c in result.failures] == [ts.CHECK_IMPRINT]


def test_tampered_tstinfo_fails_the_signature(tsa: TSAServer) -> None:
    _, body = _stamp(tsa)
    token = ts.parse_response(body)
    info = cms.ContentInfo.load(token.der)
    tst = info["content"]["encap_content_info"]["content"].parsed
    forged = tsp.TSTInfo.load(tst.dump())
    forged["gen_time"] = tst["gen_time"].native - timedelta(days=400)
    info["content"]["encap_content_info"]["content"] = forged
    tampered = ts.parse_token(info.dump(force=True))
    assert tampered.gen_time == token.gen_time - timedelta(days=400)
    result = ts.verify_timestamp(tampered, DATA, _root(tsa))
    assert ts.CHECK_SIGNATURE in [c.name for c in result.failures]
    assert "messageDigest" in result.detail


def test_tampered_signature_fails(tsa: TSAServer, servers: dict[str, TSAServer]) -> None:
    for server in (tsa, servers["ec"], servers["pss"]):
        _, body = _stamp(server)
        token = ts.parse_response(body)
        info = cms.ContentInfo.load(token.der)
        signer_info = info["content"]["signer_infos"][0]
        signature = bytearray(signer_info["signature"].native)
        signature[len(signature) // 2] ^= 0x01
        signer_info["signature"] = bytes(signature)
        result = ts.verify_timestamp(ts.parse_token(info.dump(force=True)), DATA, _root(server))
        assert [c.name for c in result.failures] == [ts.CHECK_SIGNATURE], result.detail


def test_tsa_not_chaining_to_the_roots(tsa: TSAServer, tsa_pki: PKI) -> None:
    _, body = _stamp(tsa)
    result = ts.verify_timestamp(ts.parse_response(body), DATA, [tsa_pki["other-root"].cert])
    assert [c.name for c in result.failures] == [ts.CHECK_CHAIN]
    assert "no path to a trusted root" in result.detail


def test_tsa_without_timestamping_eku(servers: dict[str, TSAServer]) -> None:
    server = servers["no-eku"]
    _, body = _stamp(server)
    token = ts.parse_response(body)
    result = ts.verify_timestamp(token, DATA, _root(server))
    # everything else about the token is sound: only the TSA's authority to time-stamp is missing
    assert [c.name for c in result.failures] == [ts.CHECK_CHAIN]
    assert "timeStamping" in result.detail


def test_nonce_mismatch(tsa: TSAServer) -> None:
    request, body = _stamp(tsa)
    assert request.nonce is not None
    result = ts.verify_timestamp(ts.parse_response(body), DATA, _root(tsa), nonce=request.nonce + 1)
    assert [c.name for c in result.failures] == [ts.CHECK_NONCE]


def test_without_roots_consistent_but_never_ok(tsa: TSAServer) -> None:
    _, body = _stamp(tsa)
    result = ts.verify_timestamp(ts.parse_response(body), DATA, None)
    assert result.consistent and not result.ok
    assert _outcomes(result)[ts.CHECK_CHAIN] is Outcome.SKIPPED
    empty = ts.verify_timestamp(ts.parse_response(body), DATA, [])
    assert not empty.ok and _outcomes(empty)[ts.CHECK_CHAIN] is Outcome.FAILED


def test_token_without_ess_binding_refused(tsa: TSAServer, tmp_path: Path) -> None:
    """A CMS signature over a TSTInfo with no signingCertificate attribute (openssl cms without -cades)."""
    _, body = _stamp(tsa)
    token = ts.parse_response(body)
    tst = cms.ContentInfo.load(token.der)["content"]["encap_content_info"]["content"].contents
    (tmp_path / "tst.der").write_bytes(tst)
    subprocess.run(
        [
            "openssl", "cms", "-sign", "-binary", "-nodetach", "-nosmimecap", "-md", "sha256",
            "-econtent_type", "1.2.840.113549.1.9.16.1.4", "-in", "tst.der",
            "-signer", str(tsa.cert_path), "-inkey", str(tsa.key_path), "-outform", "DER", "-out", "tok.der",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )  # fmt: skip
    result = ts.verify_timestamp(ts.parse_token((tmp_path / "tok.der").read_bytes()), DATA, _root(tsa))
    assert [c.name for c in result.failures] == [ts.CHECK_SIGNER]
    assert "ESS" in result.detail


def test_sha1_imprint_refused(servers: dict[str, TSAServer]) -> None:
    with pytest.raises(ts.TimestampError):
        ts.build_request(DATA, hash_algorithm="sha1")
    # the cms-signing TSA (unlike openssl ts, whose digests= line refuses it) signs a SHA-1 imprint as asked
    query = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha1"},
                "hashed_message": hashlib.sha1(DATA).digest(),
            },
            "cert_req": True,
        }
    )
    server = servers["pss"]
    status, _, body = _post(server.url, query.dump())
    assert status == 200
    result = ts.verify_timestamp(ts.parse_response(body), DATA, _root(server))
    assert [c.name for c in result.failures] == [ts.CHECK_IMPRINT]
    assert "sha1" in result.detail


# ---------------------------------------------------------------- fetching from a TSA URL


async def test_fetch_timestamp(tsa: TSAServer) -> None:
    stamp = await fetch_timestamp(tsa.url, DATA)
    assert stamp.token.imprint == hashlib.sha256(DATA).digest()
    assert ts.verify_timestamp(stamp.token, DATA, _root(tsa)).ok
    assert tsa.queries and ts.parse_response(stamp.response).serial == stamp.token.serial


async def test_fetch_unreachable() -> None:
    from testbed import refused_port

    with pytest.raises(TSAUnreachable, match="cannot connect"):
        await fetch_timestamp(f"http://127.0.0.1:{refused_port()}/", DATA, timeout=5)


async def test_fetch_http_error(tsa: TSAServer) -> None:
    with pytest.raises(TSAError, match="HTTP 404") as caught:
        await fetch_timestamp(tsa.url + "nope", DATA)
    assert caught.value.status == 404


@pytest.fixture
def faulty(tsa_pki: PKI, tmp_path: Path) -> Iterator[TSAServer]:
    with TSAServer(tsa_pki.dir, "tsa", tmp_path) as server:
        yield server


async def test_fetch_injected_http_status(faulty: TSAServer) -> None:
    faulty.http_status = 503
    with pytest.raises(TSAError, match="HTTP 503"):
        await fetch_timestamp(faulty.url, DATA)


async def test_fetch_replayed_reply_is_refused(faulty: TSAServer) -> None:
    _, old = _stamp(faulty)  # a genuine reply to an earlier request over the same data
    faulty.replay = old
    with pytest.raises(TSAMismatch, match="nonce"):
        await fetch_timestamp(faulty.url, DATA)
    with pytest.raises(TSAMismatch, match="imprint"):
        await fetch_timestamp(faulty.url, DATA + b"other")


async def test_fetch_rejected_and_garbage(faulty: TSAServer) -> None:
    _, rejection = _stamp(faulty, policy="1.2.3.99")
    faulty.replay = rejection
    with pytest.raises(ts.TimestampRejected):
        await fetch_timestamp(faulty.url, DATA)
    faulty.replay = b"<html>not a timestamp</html>"
    with pytest.raises(IntegrityError):
        await fetch_timestamp(faulty.url, DATA)


async def test_fetch_size_limit(faulty: TSAServer) -> None:
    faulty.replay = b"\x30" * 5000
    with pytest.raises(TooLargeError):
        await fetch_timestamp(faulty.url, DATA, max_size=4096)


async def test_fetch_bad_url() -> None:
    with pytest.raises(UsageError):
        await fetch_timestamp("ftp://127.0.0.1/", DATA)


def test_errors_are_sigscope_errors() -> None:
    for error in (TSAError, TSAUnreachable, TSAMismatch, ts.TimestampRejected, ts.TimestampError):
        assert issubclass(error, SigscopeError)
