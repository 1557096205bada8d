"""Certificate revocation for Notary Project chains: OCSP and CRL judged by trust/revocation.py, fetched by
sources/revocation.py from real loopback peers (`openssl ocsp -port`, an HTTP server serving CRLs made here),
wired into the notation evaluator, and end to end through `sigscope verify --trust-policy --trust-store`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from testbed import RegistryHandle, vectors
from testbed.cli import run_sigscope as sigscope
from testbed.images import _session, _upload_blob, build_layout, layout_digest, push_layout, read_blob
from testbed.notation_vectors import (
    EMPTY_BLOB,
    EMPTY_DIGEST,
    NOTARY_SIGNATURE,
    OCI_EMPTY,
    NotationSignature,
    _put_manifest,
    go_json,
    referrers_index,
    referrers_tag,
)
from testbed.ocsp import CRLServer, HangingServer, OCSPResponder, RevocationPKI
from testbed.registry import OCI_INDEX, OCI_MANIFEST, free_port
from testbed.tsa import TSAServer

from sigscope.formats import notation
from sigscope.model import Check, Descriptor, Outcome
from sigscope.sources import revocation as fetch
from sigscope.trust import revocation as rev
from sigscope.trust.notation_policy import TrustPolicyStatement, parse_policy
from sigscope.trust.notation_verify import (
    CHECK_REVOCATION,
    CHECK_TIMESTAMP,
    NotationResult,
    evaluate,
    revocation_targets,
)
from sigscope.trust.timestamp import build_request, parse_response
from sigscope.trust.truststore import StoreRef, TrustStore

if shutil.which("openssl") is None:
    pytest.skip("openssl not installed (apt-get install -y openssl)", allow_module_level=True)

CRL_VECTORS = vectors.ROOT / "notaryproject-notation-core-go" / "revocation" / "crl" / "testdata"
# Set afresh before each test (_clock below): the live OCSP responder and CRL stamp their answers with
# the real clock, and a time taken at import falls behind it by however long the suite has run so far,
# past the verifier's five minutes of allowed skew on a slow machine.
NOW = datetime.now(UTC)
_SOON = datetime.min.replace(tzinfo=UTC)  # a default meaning "shortly after NOW", read when called


@pytest.fixture(autouse=True)
def _clock() -> None:
    global NOW
    NOW = datetime.now(UTC)


SUBJECT = Descriptor(
    "application/vnd.oci.image.manifest.v1+json",
    "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e",
    528,
)


@dataclass
class Peers:
    pki: RevocationPKI
    crl: CRLServer
    responder: OCSPResponder
    hang: HangingServer

    def evidence(
        self, *names: str, timeout: float = 10.0, cache: Path | None = None
    ) -> rev.RevocationEvidence:
        options = fetch.FetchOptions(
            ocsp_timeout=timeout, crl_timeout=timeout, cache=fetch.CRLCache(cache) if cache else None
        )
        return fetch.collect_evidence([rev.Target(self.pki.chain(n)) for n in names], NOW, options)

    def status(
        self, name: str, *, signing_time: datetime | None = None, timeout: float = 10.0
    ) -> rev.ChainStatus:
        chain = self.pki.chain(name)
        return rev.chain_status(chain, self.evidence(name, timeout=timeout), NOW, signing_time)


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    # openssl ocsp needs its port before the certificates naming it exist: pick it, build, then start
    # (picked after the other servers have bound theirs, which could otherwise be handed the same one).
    with CRLServer() as crl, HangingServer() as hang:
        port = free_port()
        pki = RevocationPKI(
            tmp_path_factory.mktemp("revocation-pki"),
            f"http://127.0.0.1:{port}/",
            crl.url("root.crl"),
            hang_url=hang.url,
        )
        crl.files["/root.crl"] = pki.crl
        with OCSPResponder(pki.dir, port=port) as responder:
            yield Peers(pki, crl, responder, hang)


# ---------------------------------------------------------------- live peers: OCSP and CRL outcomes


def test_ocsp_good(peers: Peers) -> None:
    status = peers.status("good")
    assert status.status is rev.Status.OK
    [leaf, root] = status.certificates
    assert leaf.method is rev.Method.OCSP and leaf.status is rev.Status.OK
    assert "delegated responder CN=OCSP Responder" in leaf.servers[0].detail
    assert root.status is rev.Status.NON_REVOCABLE  # a root is never checked


def test_ocsp_revoked(peers: Peers) -> None:
    status = peers.status("revoked")
    assert status.status is rev.Status.REVOKED and status.certificates[0].method is rev.Method.OCSP
    assert "is revoked" in status.detail and "key_compromise" in status.detail


def test_crl_good_and_revoked(peers: Peers) -> None:
    good = peers.status("crl-good")
    assert good.status is rev.Status.OK and good.certificates[0].method is rev.Method.CRL
    revoked = peers.status("crl-revoked")
    assert revoked.status is rev.Status.REVOKED and revoked.certificates[0].method is rev.Method.CRL


def test_ocsp_unknown_falls_back_to_crl(peers: Peers) -> None:
    # absent from the responder's index: openssl answers "unknown", a definitive answer → CRL decides
    status = peers.status("unlisted")
    assert status.status is rev.Status.OK
    cert = status.certificates[0]
    assert cert.method is rev.Method.OCSP_FALLBACK_CRL
    assert cert.servers[0].definitive and cert.servers[0].status is rev.Status.UNKNOWN


def test_unreachable_responder_is_unknown(peers: Peers) -> None:
    refused = peers.status("dead-ocsp")
    assert refused.status is rev.Status.UNKNOWN and "cannot connect" in refused.detail
    assert "revocation status is unknown" in refused.detail
    # the same dead responder with a CRL distribution point: the CRL answers
    fallback = peers.status("dead-fallback")
    assert fallback.status is rev.Status.OK
    assert fallback.certificates[0].method is rev.Method.OCSP_FALLBACK_CRL


def test_responder_timeout_is_unknown(peers: Peers) -> None:
    status = peers.status("hang-ocsp", timeout=0.5)
    assert status.status is rev.Status.UNKNOWN and "timed out" in status.detail


def test_invalidity_date_against_the_signing_time(peers: Peers) -> None:
    # compromised: revoked an hour ago, invalid from two hours ago (openssl ocsp sends the invalidityDate)
    before = peers.pki.invalid_from - timedelta(minutes=30)
    after = peers.pki.invalid_from + timedelta(minutes=30)
    good_then = peers.status("compromised", signing_time=before)
    assert good_then.status is rev.Status.OK
    assert "after the authentic signing time" in good_then.certificates[0].servers[0].detail
    assert peers.status("compromised", signing_time=after).status is rev.Status.REVOKED
    assert peers.status("compromised").status is rev.Status.REVOKED  # no authentic time: revoked
    # the CRL says the same (its entry carries an InvalidityDate)
    evidence = peers.evidence("crl-good")
    crl_only = rev.RevocationEvidence(crl=dict(evidence.crl))
    leaf, root = peers.pki["compromised"].cert, peers.pki.root.cert
    ocsp_url = rev.ocsp_urls(leaf)[0]
    crl_only.ocsp[(ocsp_url, rev.build_ocsp_request(leaf, root))] = rev.Fetched(error="down")
    assert rev.chain_status([leaf, root], crl_only, NOW, before).status is rev.Status.OK
    assert rev.chain_status([leaf, root], crl_only, NOW, after).status is rev.Status.REVOKED


def test_ocsp_post_for_long_requests(peers: Peers) -> None:
    # notation switches to POST when the base64 request would make a GET path of 255 bytes or more
    leaf, root = peers.pki["revoked"].cert, peers.pki.root.cert
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, root, hashes.SHA256())
        .add_extension(x509.OCSPNonce(os.urandom(200)), critical=False)
        .build()
        .public_bytes(Encoding.DER)
    )

    async def post() -> rev.Fetched:
        async with aiohttp.ClientSession(trust_env=False) as session:
            return await fetch.fetch_ocsp(session, peers.responder.url, request, fetch.FetchOptions())

    got = asyncio.run(post())
    assert got.data is not None, got.error
    judged = rev.judge_ocsp(got.data, leaf, root, NOW)
    assert judged.status is rev.Status.REVOKED


def test_crl_cache_hit_makes_no_request(peers: Peers, tmp_path: Path) -> None:
    cache = tmp_path / "crl-cache"
    before = peers.crl.requested("root.crl")
    first = peers.evidence("crl-good", cache=cache)
    assert peers.crl.requested("root.crl") == before + 1
    assert not next(iter(first.crl.values())).from_cache
    second = peers.evidence("crl-good", "crl-revoked", cache=cache)
    assert peers.crl.requested("root.crl") == before + 1  # served from disk: the server saw nothing
    assert all(f.from_cache for f in second.crl.values())
    chain = peers.pki.chain("crl-revoked")
    assert rev.chain_status(chain, second, NOW).status is rev.Status.REVOKED  # cached CRLs are judged again
    # past the CRL's nextUpdate the cache entry is dead: a later run downloads again
    later = NOW + timedelta(days=2)
    assert fetch.CRLCache(cache).get(peers.crl.url("root.crl"), later) is None


def test_crl_from_another_signer_is_not_cached(peers: Peers, tmp_path: Path) -> None:
    forged = peers.pki.make_crl(signer=ec.generate_private_key(ec.SECP256R1()), entries=[])
    peers.crl.files["/forged.crl"] = forged
    cert, root = peers.pki["crl-revoked"].cert, peers.pki.root.cert
    need = rev.Need("crl", peers.crl.url("forged.crl"), issuer=root)
    cache = fetch.CRLCache(tmp_path)
    served = _fetch_crl(need, fetch.FetchOptions(cache=cache))
    assert served.data == forged and not served.from_cache
    assert cache.get(need.url, NOW) is None  # refused by the issuer check, so never written
    base = rev.load_crl(forged)
    with pytest.raises(rev.CRLProblem, match="not signed by CA"):
        rev.validate_crl(base, root, NOW)
    assert rev.crl_entry_status(cert, [base], None)[0] is rev.Status.OK  # what a forger would want us to read


def _fetch_crl(need: rev.Need, options: fetch.FetchOptions) -> rev.Fetched:
    async def go() -> rev.Fetched:
        async with aiohttp.ClientSession(trust_env=False) as session:
            return await fetch.fetch_crl(session, need, NOW, options)

    return asyncio.run(go())


def test_crl_size_limit(peers: Peers) -> None:
    got = _fetch_crl(rev.Need("crl", peers.crl.url("root.crl")), fetch.FetchOptions(max_crl=64))
    assert got.data is None and "limit" in (got.error or "")
    missing = _fetch_crl(rev.Need("crl", peers.crl.url("nothing.crl")), fetch.FetchOptions())
    assert missing.data is None and "404" in (missing.error or "")


# ---------------------------------------------------------------- pure: OCSP responses built here


@dataclass
class MiniCA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _mini_ca(cn: str = "Pure Root") -> MiniCA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return MiniCA(key, cert)


def _issue(ca: MiniCA, cn: str, eku: list[x509.ObjectIdentifier] | None = None) -> MiniCA:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return MiniCA(key, builder.sign(ca.key, hashes.SHA256()))


@pytest.fixture(scope="module")
def pure() -> tuple[MiniCA, MiniCA]:
    ca = _mini_ca()
    return ca, _issue(ca, "Pure Leaf")


def _response(
    ca: MiniCA,
    leaf: MiniCA,
    *,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    signer: MiniCA | None = None,
    include: list[x509.Certificate] | None = None,
    this_update: datetime | None = None,
    next_update: datetime | None = _SOON,
    for_cert: x509.Certificate | None = None,
) -> bytes:
    if next_update is _SOON:
        next_update = NOW + timedelta(hours=1)
    signer = signer or ca
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=for_cert or leaf.cert,
        issuer=ca.cert,
        algorithm=hashes.SHA256(),
        cert_status=status,
        this_update=this_update or NOW - timedelta(minutes=1),
        next_update=next_update,
        revocation_time=NOW - timedelta(hours=1) if status is ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    if include:
        builder = builder.certificates(include)
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(Encoding.DER)


def test_pure_ocsp_outcomes(pure: tuple[MiniCA, MiniCA]) -> None:
    ca, leaf = pure
    judge = rev.judge_ocsp
    assert judge(_response(ca, leaf), leaf.cert, ca.cert, NOW).status is rev.Status.OK
    revoked = judge(_response(ca, leaf, status=ocsp.OCSPCertStatus.REVOKED), leaf.cert, ca.cert, NOW)
    assert revoked.status is rev.Status.REVOKED
    unknown = judge(_response(ca, leaf, status=ocsp.OCSPCertStatus.UNKNOWN), leaf.cert, ca.cert, NOW)
    assert unknown.status is rev.Status.UNKNOWN and unknown.definitive


@pytest.mark.parametrize(
    "case, expected",
    [
        ("stranger", "not authorised"),
        ("delegate-without-eku", "lacks id-kp-OCSPSigning"),
        ("delegate-of-another-ca", "not issued by the issuer"),
        ("expired", "expired OCSP response"),
        ("no-next-update", "no nextUpdate"),
        ("future", "in the future"),
        ("other-certificate", "no matching CertID"),
        ("unauthorized", "unauthorized"),
        ("garbage", "malformed OCSP response"),
    ],
)
def test_pure_ocsp_failures(pure: tuple[MiniCA, MiniCA], case: str, expected: str) -> None:
    ca, leaf = pure
    revoked = ocsp.OCSPCertStatus.REVOKED
    if case == "stranger":
        data = _response(ca, leaf, status=revoked, signer=_mini_ca("Stranger"))
    elif case == "delegate-without-eku":
        delegate = _issue(ca, "Delegate", [ExtendedKeyUsageOID.CODE_SIGNING])
        data = _response(ca, leaf, signer=delegate, include=[delegate.cert])
    elif case == "delegate-of-another-ca":
        delegate = _issue(_mini_ca("Other"), "Delegate", [ExtendedKeyUsageOID.OCSP_SIGNING])
        data = _response(ca, leaf, signer=delegate, include=[delegate.cert])
    elif case == "expired":
        data = _response(ca, leaf, this_update=NOW - timedelta(days=2), next_update=NOW - timedelta(days=1))
    elif case == "no-next-update":
        data = _response(ca, leaf, next_update=None)
    elif case == "future":
        data = _response(ca, leaf, this_update=NOW + timedelta(hours=1), next_update=NOW + timedelta(hours=2))
    elif case == "other-certificate":
        data = _response(ca, leaf, for_cert=_issue(ca, "Someone Else").cert)
    elif case == "unauthorized":
        data = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
            Encoding.DER
        )
    else:
        data = b"\x30\x03\x0a\x01\x00garbage"
    result = rev.judge_ocsp(data, leaf.cert, ca.cert, NOW)
    assert result.status is rev.Status.UNKNOWN and not result.definitive
    assert expected in result.detail


def test_pure_delegated_responder_accepted(pure: tuple[MiniCA, MiniCA]) -> None:
    ca, leaf = pure
    delegate = _issue(ca, "Delegate", [ExtendedKeyUsageOID.OCSP_SIGNING])
    data = _response(ca, leaf, status=ocsp.OCSPCertStatus.REVOKED, signer=delegate, include=[delegate.cert])
    result = rev.judge_ocsp(data, leaf.cert, ca.cert, NOW)
    assert result.status is rev.Status.REVOKED and "delegated responder CN=Delegate" in result.detail


def test_pure_ocsp_error_moves_to_next_server(pure: tuple[MiniCA, MiniCA]) -> None:
    ca, _ = pure
    key = ec.generate_private_key(ec.SECP256R1())
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(u))
            for u in ("https://tls.example/", "http://a.example/", "http://b.example/")
        ]
    )
    leaf = MiniCA(
        key,
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Two Responders")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(aia, critical=False)
        .sign(ca.key, hashes.SHA256()),
    )
    chain = [leaf.cert, ca.cert]
    evidence = rev.RevocationEvidence()
    first = rev.chain_status(chain, evidence, NOW)
    # https is never fetched (notation: http only); the first http responder is asked first
    assert [n.url for n in first.missing] == ["http://a.example/"]
    request = rev.build_ocsp_request(leaf.cert, ca.cert)
    evidence.ocsp[("http://a.example/", request)] = rev.Fetched(error="refused")
    assert [n.url for n in rev.chain_status(chain, evidence, NOW).missing] == ["http://b.example/"]
    evidence.ocsp[("http://b.example/", request)] = rev.Fetched(
        _response(ca, leaf, status=ocsp.OCSPCertStatus.REVOKED)
    )
    final = rev.chain_status(chain, evidence, NOW)
    assert final.status is rev.Status.REVOKED and not final.missing


# ---------------------------------------------------------------- pure: CRLs built here


def _crl(
    ca: MiniCA,
    entries: list[x509.RevokedCertificate],
    *,
    next_update: datetime | None = _SOON,
    number: int = 1,
    extensions: list[tuple[x509.ExtensionType, bool]] | None = None,
    signer: MiniCA | None = None,
) -> x509.CertificateRevocationList:
    if next_update is _SOON:
        next_update = NOW + timedelta(days=1)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(NOW - timedelta(minutes=5))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    if next_update is not None:
        builder = builder.next_update(next_update)
    for ext, critical in extensions or []:
        builder = builder.add_extension(ext, critical=critical)
    for entry in entries:
        builder = builder.add_revoked_certificate(entry)
    return builder.sign((signer or ca).key, hashes.SHA256())


def _entry(
    cert: x509.Certificate, reason: x509.ReasonFlags | None = None, when: datetime | None = None, **more: Any
) -> x509.RevokedCertificate:
    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(cert.serial_number)
        .revocation_date(when or NOW - timedelta(hours=1))
    )
    if reason is not None:
        builder = builder.add_extension(x509.CRLReason(reason), critical=False)
    if "invalid" in more:
        builder = builder.add_extension(x509.InvalidityDate(more["invalid"]), critical=False)
    if more.get("critical_unknown"):
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), True
        )
    return builder.build()


def _without_next_update(crl: x509.CertificateRevocationList, ca: MiniCA) -> x509.CertificateRevocationList:
    """cryptography cannot build a CRL without nextUpdate (optional in RFC 5280): drop it, re-sign."""
    from asn1crypto import crl as asn1_crl

    parsed = asn1_crl.CertificateList.load(crl.public_bytes(Encoding.DER))
    parsed["tbs_cert_list"]["next_update"] = None
    tbs = parsed["tbs_cert_list"].dump(force=True)
    parsed["signature"] = ca.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return x509.load_der_x509_crl(parsed.dump(force=True))


def test_pure_crl_validation(pure: tuple[MiniCA, MiniCA]) -> None:
    ca, _ = pure
    rev.validate_crl(_crl(ca, []), ca.cert, NOW)
    cases = [
        (_crl(ca, [], signer=_mini_ca("Pure Root")), "not signed by CA"),  # same name, other key
        (_crl(ca, [], next_update=NOW - timedelta(seconds=1)), "expired CRL"),
        (_without_next_update(_crl(ca, []), ca), "NextUpdate is not set"),
        (
            _crl(
                ca,
                [],
                extensions=[
                    (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), True)
                ],
            ),
            "unsupported critical extension",
        ),
    ]
    for crl, expected in cases:
        with pytest.raises(rev.CRLProblem, match=expected):
            rev.validate_crl(crl, ca.cert, NOW)


def test_pure_crl_entries(pure: tuple[MiniCA, MiniCA]) -> None:
    ca, leaf = pure
    status = rev.crl_entry_status
    assert status(leaf.cert, [_crl(ca, [])], None)[0] is rev.Status.OK
    assert status(leaf.cert, [_crl(ca, [_entry(leaf.cert)])], None)[0] is rev.Status.REVOKED
    hold = _crl(ca, [_entry(leaf.cert, x509.ReasonFlags.certificate_hold)])
    assert status(leaf.cert, [hold], None) == (rev.Status.REVOKED, status(leaf.cert, [hold], None)[1])
    assert "certificateHold" in status(leaf.cert, [hold], None)[1]
    released = _crl(
        ca, [_entry(leaf.cert, x509.ReasonFlags.remove_from_crl, NOW - timedelta(minutes=30))], number=2
    )
    assert status(leaf.cert, [hold, released], None)[0] is rev.Status.OK  # the later entry wins
    invalid_from = NOW - timedelta(days=2)
    compromised = _crl(ca, [_entry(leaf.cert, x509.ReasonFlags.key_compromise, invalid=invalid_from)])
    assert status(leaf.cert, [compromised], invalid_from - timedelta(hours=1))[0] is rev.Status.OK
    assert status(leaf.cert, [compromised], invalid_from + timedelta(hours=1))[0] is rev.Status.REVOKED
    assert status(leaf.cert, [compromised], None)[0] is rev.Status.REVOKED
    with pytest.raises(rev.CRLProblem, match="critical extension"):
        status(leaf.cert, [_crl(ca, [_entry(leaf.cert, critical_unknown=True)])], None)


def test_pure_delta_crl_rules(pure: tuple[MiniCA, MiniCA]) -> None:
    ca, leaf = pure
    base = _crl(ca, [], number=5)
    good_delta = _crl(ca, [_entry(leaf.cert)], number=6, extensions=[(x509.DeltaCRLIndicator(5), True)])
    rev.validate_bundle(base, good_delta, ca.cert, NOW)
    assert rev.crl_entry_status(leaf.cert, [base, good_delta], None)[0] is rev.Status.REVOKED
    stale = _crl(ca, [], number=5, extensions=[(x509.DeltaCRLIndicator(4), True)])
    with pytest.raises(rev.CRLProblem, match="not greater than the base CRL number"):
        rev.validate_bundle(base, stale, ca.cert, NOW)
    ahead = _crl(ca, [], number=7, extensions=[(x509.DeltaCRLIndicator(6), True)])
    with pytest.raises(rev.CRLProblem, match="delta CRL indicator 6"):
        rev.validate_bundle(base, ahead, ca.cert, NOW)
    with pytest.raises(rev.CRLProblem, match="indicator extension is not found"):
        rev.validate_bundle(base, _crl(ca, [], number=6), ca.cert, NOW)
    with pytest.raises(rev.CRLProblem, match="is a delta CRL"):
        rev.validate_bundle(good_delta, None, ca.cert, NOW)


@pytest.mark.vectors
def test_notation_core_go_crl_vectors() -> None:
    base = rev.load_crl((CRL_VECTORS / "crlWithMultipleFreshestCRLs.crl").read_bytes())
    urls = rev.freshest_crl_urls(base.extensions)
    assert len(urls) == 2 and all("cmd=deltacrl" in u for u in urls)
    delta = rev.load_crl((CRL_VECTORS / "delta.crl").read_bytes())
    assert rev.freshest_crl_urls(delta.extensions) == []

    def cert(name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((CRL_VECTORS / name).read_bytes())

    assert len(rev.freshest_crl_urls(cert("certificateWith2DeltaCRL.cer").extensions)) == 2
    assert len(rev.freshest_crl_urls(cert("certificateWithDeltaCRL.cer").extensions)) == 1
    # cryptography refuses these Freshest CRL encodings outright; a base CRL carrying one is judged unknown
    # (notation-go reads the empty and non-URI ones as "no delta": we fail closed instead)
    for name in (
        "certificateWithZeroDeltaCRLURL.cer",
        "certificateWithNonURIDeltaCRL.cer",
        "certificateWithIncompleteFreshestCRL.cer",
        "certificateWithIncompleteFreshestCRL2.cer",
    ):
        with pytest.raises(ValueError):
            rev.freshest_crl_urls(cert(name).extensions)


def test_pure_chain_verdicts(pure: tuple[MiniCA, MiniCA]) -> None:
    ca, leaf = pure
    # no OCSP, no CRL anywhere: non-revocable, which notation counts as ok
    status = rev.chain_status([leaf.cert, ca.cert], rev.RevocationEvidence(), NOW)
    assert status.status is rev.Status.OK and "non-revocable" in status.detail
    assert not rev.chain_revocable([leaf.cert, ca.cert])


# ---------------------------------------------------------------- the notation evaluator with evidence


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def build_jws(
    key: ec.EllipticCurvePrivateKey,
    chain: list[x509.Certificate],
    *,
    subject: Descriptor = SUBJECT,
    tsa: TSAServer | None = None,
) -> bytes:
    protected: dict[str, Any] = {
        "alg": "ES256",
        "cty": notation.PAYLOAD_MEDIA_TYPE,
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": (NOW - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    encoded = b64url(json.dumps(protected).encode())
    payload = b64url(json.dumps({"targetArtifact": subject.to_json()}).encode())
    r, s = decode_dss_signature(key.sign(f"{encoded}.{payload}".encode(), ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    header: dict[str, Any] = {"x5c": [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in chain]}
    if tsa is not None:
        token = parse_response(tsa.reply(build_request(signature).der)).der
        header["io.cncf.notary.timestampSignature"] = base64.b64encode(token).decode()
    return json.dumps(
        {"payload": payload, "protected": encoded, "header": header, "signature": b64url(signature)}
    ).encode()


IDENTITY = "x509.subject:C=US,ST=WA,O=Revocation Tests"


def statement(level: str = "strict", *, tsa: bool = False, **verification: Any) -> TrustPolicyStatement:
    body = {
        "name": "revocation",
        "registryScopes": ["*"],
        "signatureVerification": {"level": level, **verification},
        "trustStores": ["ca:rev", *(["tsa:rev"] if tsa else [])],
        "trustedIdentities": [IDENTITY],
    }
    return parse_policy(json.dumps({"version": "1.0", "trustPolicies": [body]}).encode()).statements[0]


def judged(
    peers: Peers,
    name: str,
    policy: TrustPolicyStatement,
    *,
    tsa: TSAServer | None = None,
    timeout: float = 10.0,
) -> NotationResult:
    entity = peers.pki[name]
    blob = build_jws(entity.key, peers.pki.chain(name), tsa=tsa)
    sig = notation.parse_envelope(blob, notation.JWS_MEDIA_TYPE, subject=SUBJECT, location=name, now=NOW)
    store = TrustStore.from_certificates(
        {StoreRef("ca", "rev"): [peers.pki.root.cert], StoreRef("tsa", "rev"): [peers.pki.root.cert]}
    )
    targets = revocation_targets(sig, policy, store, NOW)
    evidence = fetch.collect_evidence(
        targets, NOW, fetch.FetchOptions(ocsp_timeout=timeout, crl_timeout=timeout)
    )
    return evaluate(sig, policy, store, NOW, evidence)


def check(result: NotationResult, name: str) -> Check:
    [found] = [c for c in result.checks if c.name == name]
    return found


def test_evaluate_good_chain(peers: Peers) -> None:
    result = judged(peers, "good", statement())
    assert result.satisfied and result.trusted, result.reason
    revocation = check(result, CHECK_REVOCATION)
    assert revocation.outcome is Outcome.PASSED and "by ocsp" in revocation.detail


def test_evaluate_revoked_fails_at_every_checking_level(peers: Peers) -> None:
    for level in ("strict", "permissive", "audit"):
        result = judged(peers, "revoked", statement(level))
        assert not result.satisfied, level
        assert (
            result.reason.startswith("revocation: signing certificate with subject")
            and "is revoked" in result.reason
        )
    logged = judged(peers, "revoked", statement(override={"revocation": "log"}))
    assert not logged.satisfied
    skipped = judged(peers, "revoked", statement(override={"revocation": "skip"}))
    assert skipped.satisfied and check(skipped, CHECK_REVOCATION).outcome is Outcome.SKIPPED


def test_evaluate_crl_revoked(peers: Peers) -> None:
    result = judged(peers, "crl-revoked", statement())
    assert not result.satisfied and "is revoked" in result.reason and "crl http" in result.reason


def test_evaluate_unreachable_per_level(peers: Peers) -> None:
    strict = judged(peers, "dead-ocsp", statement())
    assert not strict.satisfied and "revocation status is unknown" in strict.reason
    for level in ("permissive", "audit"):
        logged = judged(peers, "dead-ocsp", statement(level))
        assert logged.satisfied, level
        assert any("revocation status is unknown" in w for w in logged.warnings)
        assert check(logged, CHECK_REVOCATION).outcome is Outcome.SKIPPED
    assert judged(peers, "dead-ocsp", statement(override={"revocation": "log"})).satisfied
    timed_out = judged(peers, "hang-ocsp", statement(), timeout=0.5)
    assert not timed_out.satisfied and "timed out" in timed_out.reason


def test_evaluate_revoked_tsa(peers: Peers, tmp_path: Path) -> None:
    with TSAServer(peers.pki.dir, "tsa", tmp_path / "good-tsa") as good_tsa:
        ok = judged(peers, "good", statement(tsa=True, verifyTimestamp="always"), tsa=good_tsa)
        assert ok.satisfied, ok.reason
        stamp = check(ok, CHECK_TIMESTAMP)
        assert stamp.outcome is Outcome.PASSED and "TSA chain not revoked" in stamp.detail
    with TSAServer(peers.pki.dir, "revoked-tsa", tmp_path / "revoked-tsa") as bad_tsa:
        result = judged(peers, "good", statement(tsa=True, verifyTimestamp="always"), tsa=bad_tsa)
        assert not result.satisfied
        assert result.reason.startswith("authentic-timestamp: timestamping certificate with subject")
        assert "Revocation revoked-tsa" in result.reason and "is revoked" in result.reason
        # permissive logs authentic-timestamp, but a revoked TSA is never only logged
        assert not judged(
            peers, "good", statement("permissive", tsa=True, verifyTimestamp="always"), tsa=bad_tsa
        ).satisfied


def test_evaluate_invalidity_date_uses_the_verified_timestamp(peers: Peers, tmp_path: Path) -> None:
    # compromised: invalid from two hours ago; the timestamp (now) is later → revoked. Without a verified
    # timestamp the claimed signingTime is never used → revoked too.
    with TSAServer(peers.pki.dir, "tsa", tmp_path / "tsa") as tsa:
        stamped = judged(peers, "compromised", statement(tsa=True, verifyTimestamp="always"), tsa=tsa)
    assert not stamped.satisfied and "is revoked" in stamped.reason
    assert not judged(peers, "compromised", statement()).satisfied


# ---------------------------------------------------------------- end to end: sigscope verify


def push_signed(registry: RegistryHandle, work: Path, repo: str, envelope_of: Any) -> str:
    """Push a fresh image to `repo:v1` and one Notary signature (JWS from `envelope_of(subject)`) for it."""
    layout = work / "layout"
    build_layout(layout, "v1", seed=f"revocation/{repo}")
    push_layout(layout, "v1", registry.host, repo)
    digest = layout_digest(layout, "v1")
    subject = Descriptor(OCI_MANIFEST, digest, len(read_blob(layout, digest)))
    envelope = envelope_of(subject)
    manifest = go_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": NOTARY_SIGNATURE,
            "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
            "layers": [
                {
                    "mediaType": notation.JWS_MEDIA_TYPE,
                    "digest": "sha256:" + hashlib.sha256(envelope).hexdigest(),
                    "size": len(envelope),
                }
            ],
            "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": subject.size},
            "annotations": {"org.opencontainers.image.created": NOW.strftime("%Y-%m-%dT%H:%M:%SZ")},
        }
    )
    base = f"http://{registry.host}"
    sig = NotationSignature(
        "jws", envelope, manifest, "sha256:" + hashlib.sha256(manifest).hexdigest(), False
    )
    with _session() as s:
        _upload_blob(s, base, repo, EMPTY_BLOB)
        _upload_blob(s, base, repo, envelope)
        _put_manifest(s, base, repo, sig.digest, manifest, OCI_MANIFEST)
        _put_manifest(s, base, repo, referrers_tag(digest), referrers_index([sig]), OCI_INDEX)
    return f"{registry.host}/{repo}@{digest}"


def trust_files(peers: Peers, directory: Path, level: str = "strict") -> list[str]:
    store = directory / "truststore"
    for kind in ("ca", "tsa"):
        (store / "x509" / kind / "rev").mkdir(parents=True)
        (store / "x509" / kind / "rev" / "root.crt").write_bytes(
            peers.pki.root.cert.public_bytes(Encoding.PEM)
        )
    policy = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "revocation",
                "registryScopes": ["*"],
                "signatureVerification": {"level": level},
                "trustStores": ["ca:rev"],
                "trustedIdentities": [IDENTITY],
            }
        ],
    }
    (directory / "trustpolicy.json").write_text(json.dumps(policy))
    return ["--trust-policy", str(directory / "trustpolicy.json"), "--trust-store", str(store)]


@pytest.fixture(scope="module")
def served(
    peers: Peers, registry: RegistryHandle, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    out = {}
    for name in ("good", "revoked", "crl-good", "dead-ocsp"):
        entity = peers.pki[name]

        def envelope(subject: Descriptor, entity: Any = entity, name: str = name) -> bytes:
            return build_jws(entity.key, peers.pki.chain(name), subject=subject)

        out[name] = push_signed(
            registry, tmp_path_factory.mktemp(f"push-{name}"), f"revocation/{name}", envelope
        )
    return out


def test_cli_good_and_revoked(peers: Peers, served: dict[str, str], tmp_path: Path) -> None:
    flags = [*trust_files(peers, tmp_path / "trust"), "--crl-cache", str(tmp_path / "cache")]
    good = sigscope("verify", served["good"], "--insecure", *flags, "-o", "json")
    assert good.returncode == 0, good.stderr
    [sig] = json.loads(good.stdout)["signatures"]
    [revocation] = [c for c in sig["checks"] if c["name"] == "revocation"]
    assert revocation["outcome"] == "passed" and "by ocsp" in revocation["detail"]
    revoked = sigscope("verify", served["revoked"], "--insecure", *flags)
    assert revoked.returncode == 1
    assert "revocation: signing certificate with subject" in revoked.stdout and "is revoked" in revoked.stdout
    assert revoked.stderr == ""


def test_cli_crl_cache(peers: Peers, served: dict[str, str], tmp_path: Path) -> None:
    flags = [*trust_files(peers, tmp_path / "trust"), "--crl-cache", str(tmp_path / "cache")]
    before = peers.crl.requested("root.crl")
    for _ in range(2):
        result = sigscope("verify", served["crl-good"], "--insecure", *flags)
        assert result.returncode == 0, result.stderr
    assert peers.crl.requested("root.crl") == before + 1  # the second run read the cache
    uncached = sigscope("verify", served["crl-good"], "--insecure", *flags, "--no-crl-cache")
    assert uncached.returncode == 0, uncached.stderr
    assert peers.crl.requested("root.crl") == before + 2


def test_cli_unreachable_per_level(peers: Peers, served: dict[str, str], tmp_path: Path) -> None:
    strict = sigscope(
        "verify",
        served["dead-ocsp"],
        "--insecure",
        *trust_files(peers, tmp_path / "strict"),
        "--revocation-timeout",
        "1",
    )
    assert strict.returncode == 1
    assert "revocation status is unknown" in strict.stdout and "cannot connect" in strict.stdout
    permissive = sigscope(
        "verify",
        served["dead-ocsp"],
        "--insecure",
        *trust_files(peers, tmp_path / "permissive", "permissive"),
    )
    assert permissive.returncode == 0, permissive.stderr
    assert "warning: " in permissive.stdout and "revocation:" in permissive.stdout
    assert permissive.stderr == ""


def test_cli_bad_revocation_timeout(served: dict[str, str], peers: Peers, tmp_path: Path) -> None:
    result = sigscope(
        "verify",
        served["good"],
        "--insecure",
        *trust_files(peers, tmp_path / "t"),
        "--revocation-timeout",
        "0",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_untrusted_chains_cause_no_requests(peers: Peers) -> None:
    # a chain the trust store does not vouch for names URLs an attacker chose: none is requested
    entity = peers.pki["good"]
    blob = build_jws(entity.key, peers.pki.chain("good"))
    sig = notation.parse_envelope(blob, notation.JWS_MEDIA_TYPE, subject=SUBJECT, location="x", now=NOW)
    stranger = TrustStore.from_certificates({StoreRef("ca", "rev"): [_mini_ca("Stranger").cert]})
    assert revocation_targets(sig, statement("audit"), stranger, NOW) == []
    trusted = TrustStore.from_certificates({StoreRef("ca", "rev"): [peers.pki.root.cert]})
    [target] = revocation_targets(sig, statement("audit"), trusted, NOW)
    assert target.chain[0] == entity.cert and target.signing_time is None  # signingTime is only claimed
    audit = evaluate(sig, statement("audit"), stranger, NOW, rev.RevocationEvidence())
    assert audit.satisfied and not audit.trusted
    assert "not fetched" in check(audit, CHECK_REVOCATION).detail


def test_responder_signing_as_the_issuer(peers: Peers) -> None:
    # openssl ocsp signing with the CA's own key (no delegation): accepted as the issuer's answer
    with OCSPResponder(peers.pki.dir, signer="root") as responder:
        leaf, root = peers.pki["revoked"].cert, peers.pki.root.cert
        request = rev.build_ocsp_request(leaf, root)

        async def get() -> rev.Fetched:
            async with aiohttp.ClientSession(trust_env=False) as session:
                return await fetch.fetch_ocsp(session, responder.url, request, fetch.FetchOptions())

        got = asyncio.run(get())
    assert got.data is not None, got.error
    judged = rev.judge_ocsp(got.data, leaf, root, NOW)
    assert judged.status is rev.Status.REVOKED and "signed by the issuer" in judged.detail
    # the same answer is worthless for a certificate of another issuer
    other = _mini_ca("Revocation Root")
    assert rev.judge_ocsp(got.data, leaf, other.cert, NOW).status is rev.Status.UNKNOWN
