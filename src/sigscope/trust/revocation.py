"""Certificate revocation by OCSP and CRL, as notation-core-go's `revocation` package decides (FORMATS §2.11).

Pure: nothing here opens a socket or reads a clock. What the servers said arrives as `RevocationEvidence`
(bytes or a fetch error per URL, gathered by sources/revocation.py); `cert_status` / `chain_status` judge it
at a given time. When the judgement needs an answer the evidence does not hold yet, the result names it in
`missing` — the fetcher supplies exactly that and asks again, so the order of requests (OCSP URLs in order,
stop at the first definitive answer, CRL only as a fallback) is decided here, once.

Per certificate (the chain's root is never checked: nothing above it could revoke it):
  no OCSP URL and no CRL distribution point    non-revocable
  OCSP (AIA id-ad-ocsp, http:// only)          a response for our CertID signed by the issuer or by a
                                               responder the issuer delegated (id-kp-OCSPSigning, directly
                                               issued, valid); thisUpdate not in the future, nextUpdate set
                                               and not passed. good → ok, revoked → revoked, unknown →
                                               unknown (definitive: no other OCSP server is asked); an
                                               error moves on to the next URL.
  CRL fallback (OCSP unknown or absent)        every distribution point URL (http:// only): the base CRL
                                               (and the delta its Freshest CRL extension names) signed by
                                               the issuer, nextUpdate set and not passed, no unknown
                                               critical extension (IDP and Freshest CRL tolerated), delta
                                               number above the base's, delta indicator ≤ base number;
                                               a listed serial is revoked (certificateHold per the most
                                               recent hold/removeFromCRL entry). Any error → unknown.
An entry's invalidityDate after the signing time (only an *authentic* one: the signingAuthority signing time
or a verified timestamp, never the claimed signingTime) means the certificate was still good when it signed.
The chain's verdict: revoked if any certificate is, ok if all are ok or non-revocable, unknown otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    CRLEntryExtensionOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
    SignatureAlgorithmOID,
)

OCSP_TIMEOUT = 2.0  # notation-go's defaults
CRL_TIMEOUT = 5.0
MAX_OCSP_RESPONSE = 20480  # notation-core-go's ocspMaxResponseSize
MAX_CRL_SIZE = 32 * 1024 * 1024  # notation-core-go's maxCRLSize
# A responder's clock a little ahead of ours is not evidence of anything.
CLOCK_SKEW = timedelta(minutes=5)

_OCSP_NOCHECK = x509.ObjectIdentifier("1.3.6.1.5.5.7.48.1.5")


class Status(StrEnum):
    OK = "ok"
    NON_REVOCABLE = "non-revocable"
    UNKNOWN = "unknown"
    REVOKED = "revoked"


class Purpose(StrEnum):
    CODE_SIGNING = "codesigning"
    TIMESTAMPING = "timestamping"


class Method(StrEnum):
    NONE = "none"
    OCSP = "ocsp"
    CRL = "crl"
    OCSP_FALLBACK_CRL = "ocsp-fallback-crl"


@dataclass(frozen=True)
class Fetched:
    """What one URL gave: the body, or why there is none."""

    data: bytes | None = None
    error: str | None = None
    from_cache: bool = False


@dataclass(frozen=True)
class Need:
    """A request the judgement needs answered: an OCSP request to POST/GET, or a CRL URL to GET."""

    kind: str  # "ocsp" | "crl"
    url: str
    request: bytes = b""  # the DER OCSPRequest (kind "ocsp")
    issuer: x509.Certificate | None = field(default=None, compare=False)  # lets a cache vet a CRL


@dataclass
class RevocationEvidence:
    """Every answer fetched so far; shared by all signatures of a run (keys name URL and request)."""

    ocsp: dict[tuple[str, bytes], Fetched] = field(default_factory=dict)
    crl: dict[str, Fetched] = field(default_factory=dict)

    def lookup(self, need: Need) -> Fetched | None:
        return self.ocsp.get((need.url, need.request)) if need.kind == "ocsp" else self.crl.get(need.url)

    def add(self, need: Need, fetched: Fetched) -> None:
        if need.kind == "ocsp":
            self.ocsp[(need.url, need.request)] = fetched
        else:
            self.crl[need.url] = fetched


@dataclass(frozen=True)
class ServerResult:
    method: Method
    url: str
    status: Status
    detail: str = ""
    definitive: bool = False  # an OCSP `unknown` answer: no other OCSP server is asked


@dataclass(frozen=True)
class CertResult:
    subject: str
    status: Status
    method: Method
    servers: tuple[ServerResult, ...] = ()
    missing: tuple[Need, ...] = ()

    @property
    def detail(self) -> str:
        if self.status is Status.NON_REVOCABLE:
            return "names no OCSP or CRL location"
        shown = [s for s in self.servers if s.detail] or list(self.servers)
        parts = [f"{s.method} {s.url}: {s.detail or s.status}" for s in shown]
        parts += [f"{n.kind} {n.url}: not fetched" for n in self.missing]
        return "; ".join(parts)


@dataclass(frozen=True)
class ChainStatus:
    status: Status
    certificates: tuple[CertResult, ...]
    purpose: Purpose = Purpose.CODE_SIGNING

    @property
    def missing(self) -> tuple[Need, ...]:
        return tuple(n for c in self.certificates for n in c.missing)

    @property
    def problem(self) -> CertResult | None:
        """The certificate that decided a revoked/unknown verdict (revoked first, then nearest the root)."""
        for wanted in (Status.REVOKED, Status.UNKNOWN):
            for result in reversed(self.certificates):
                if result.status is wanted:
                    return result
        return None

    @property
    def detail(self) -> str:
        what = "signing" if self.purpose is Purpose.CODE_SIGNING else "timestamping"
        problem = self.problem
        if self.status is Status.REVOKED and problem is not None:
            return f"{what} certificate with subject {problem.subject!r} is revoked ({problem.detail})"
        if self.status is Status.UNKNOWN and problem is not None:
            return (
                f"{what} certificate with subject {problem.subject!r} revocation status is unknown "
                f"({problem.detail})"
            )
        checked = [c for c in self.certificates if c.status is Status.OK]
        if not checked:
            return f"no certificate of the {what} chain names an OCSP or CRL location (non-revocable)"
        by = ", ".join(f"{c.subject} by {c.method}" for c in checked)
        return f"not revoked: {by}"


@dataclass(frozen=True)
class Target:
    """One chain to check: leaf first, root last, with the authentic signing time when there is one."""

    chain: Sequence[x509.Certificate]
    signing_time: datetime | None = None
    purpose: Purpose = Purpose.CODE_SIGNING


# ---------------------------------------------------------------- where a certificate says to ask


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


def _point_urls(points: Iterable[x509.DistributionPoint]) -> list[str]:
    return [
        name.value
        for point in points
        for name in (point.full_name or ())
        if isinstance(name, x509.UniformResourceIdentifier)
    ]


def crl_urls(cert: x509.Certificate) -> list[str]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return _point_urls(points)


def freshest_crl_urls(extensions: x509.Extensions) -> list[str]:
    """The delta CRL URLs of a Freshest CRL extension (in a base CRL); [] when there is none."""
    try:
        points = extensions.get_extension_for_class(x509.FreshestCRL).value
    except x509.ExtensionNotFound:
        return []
    return _point_urls(points)


def revocable(cert: x509.Certificate) -> bool:
    """Names an OCSP or CRL location; unreadable extensions count as naming one (they might)."""
    try:
        return bool(ocsp_urls(cert) or crl_urls(cert))
    except ValueError:
        return True


def _http(url: str) -> bool:
    return urlsplit(url).scheme.lower() == "http"


# ---------------------------------------------------------------- OCSP


def build_ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """The DER OCSPRequest notation sends: one SHA-256 CertID, no nonce (so it is deterministic)."""
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    return request.public_bytes(Encoding.DER)


def _cert_id(
    cert: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[bytes, bytes, int]:
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm).build()
    return request.issuer_name_hash, request.issuer_key_hash, request.serial_number


def _verify_signature(
    key: object, signature: bytes, data: bytes, oid: x509.ObjectIdentifier, algorithm: object
) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if not isinstance(algorithm, hashes.HashAlgorithm):
                return False
            pad: padding.AsymmetricPadding = (
                padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.AUTO)
                if oid == SignatureAlgorithmOID.RSASSA_PSS
                else padding.PKCS1v15()
            )
            key.verify(signature, data, pad, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(algorithm, hashes.HashAlgorithm):
                return False
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _key_hash(cert: x509.Certificate) -> bytes:
    # RFC 6960 ResponderID byKey: SHA-1 of the subjectPublicKey BIT STRING, i.e. the RFC 5280 method-1 SKI.
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def _names_responder(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if response.responder_name is not None:
        return response.responder_name == cert.subject
    return response.responder_key_hash == _key_hash(cert)


def _responder(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, at: datetime
) -> tuple[x509.Certificate | None, str]:
    """The certificate whose key signed `response`, if the issuer authorised it; else (None, why)."""
    data, signature = response.tbs_response_bytes, response.signature
    oid, algorithm = response.signature_algorithm_oid, response.signature_hash_algorithm
    if _names_responder(response, issuer) and _verify_signature(
        issuer.public_key(), signature, data, oid, algorithm
    ):
        return issuer, "signed by the issuer"
    problems: list[str] = []
    for candidate in response.certificates:
        if not _names_responder(response, candidate):
            continue
        try:
            candidate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            problems.append(f"responder {candidate.subject.rfc4514_string()} is not issued by the issuer")
            continue
        try:
            eku = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = None
        if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            problems.append(f"responder {candidate.subject.rfc4514_string()} lacks id-kp-OCSPSigning")
            continue
        if not candidate.not_valid_before_utc <= at <= candidate.not_valid_after_utc:
            problems.append(f"responder certificate {candidate.subject.rfc4514_string()} is not valid now")
            continue
        if not _verify_signature(candidate.public_key(), signature, data, oid, algorithm):
            problems.append("the response signature does not verify")
            continue
        return candidate, f"signed by delegated responder {candidate.subject.rfc4514_string()}"
    if not problems:
        problems.append("the response is signed neither by the issuer nor by a responder it delegated")
    return None, "; ".join(problems)


def _invalidity_date(extensions: x509.Extensions) -> datetime | None:
    try:
        value = extensions.get_extension_for_class(x509.InvalidityDate).value
    except x509.ExtensionNotFound:
        return None
    return value.invalidity_date_utc


def judge_ocsp(
    data: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    at: datetime,
    signing_time: datetime | None = None,
    url: str = "",
) -> ServerResult:
    """One OCSP response for `cert` (issued by `issuer`) judged at `at`."""

    def fail(why: str) -> ServerResult:
        return ServerResult(Method.OCSP, url, Status.UNKNOWN, why)

    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError as exc:
        return fail(f"malformed OCSP response: {exc}")
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return fail(f"OCSP responder answered {response.response_status.name.lower()}")
    try:
        signer, how = _responder(response, issuer, at)
    except ValueError as exc:
        return fail(f"malformed OCSP response: {exc}")
    if signer is None:
        return fail(f"OCSP response is not authorised: {how}")
    try:
        singles = list(response.responses)
    except ValueError as exc:
        return fail(f"malformed OCSP response: {exc}")
    match_index = -1
    for index, single in enumerate(singles):
        try:
            wanted = _cert_id(cert, issuer, single.hash_algorithm)
        except (ValueError, UnsupportedAlgorithm):
            continue
        if (single.issuer_name_hash, single.issuer_key_hash, single.serial_number) == wanted:
            match_index = index
            break
    if match_index < 0:
        return fail("the OCSP response is not for this certificate (no matching CertID)")
    single = singles[match_index]
    if single.this_update_utc > at + CLOCK_SKEW:
        return fail(f"OCSP response thisUpdate {single.this_update_utc.isoformat()} is in the future")
    next_update = single.next_update_utc
    if next_update is None:
        return fail("OCSP response has no nextUpdate")
    if at > next_update:
        return fail(f"expired OCSP response (nextUpdate {next_update.isoformat()})")
    status = single.certificate_status
    if status is ocsp.OCSPCertStatus.GOOD:
        return ServerResult(Method.OCSP, url, Status.OK, f"good ({how})")
    if status is ocsp.OCSPCertStatus.REVOKED:
        invalid = None
        if match_index == 0:  # cryptography exposes singleExtensions of the first response only
            try:
                invalid = _invalidity_date(response.single_extensions)
            except ValueError:
                invalid = None
        if invalid is not None and signing_time is not None and signing_time < invalid:
            return ServerResult(
                Method.OCSP,
                url,
                Status.OK,
                f"revoked, but invalid only from {invalid.isoformat()}, after the authentic signing time",
            )
        revoked_at = single.revocation_time_utc
        when = f" at {revoked_at.isoformat()}" if revoked_at else ""
        reason = f" ({single.revocation_reason.name})" if single.revocation_reason else ""
        return ServerResult(Method.OCSP, url, Status.REVOKED, f"revoked{when}{reason} ({how})")
    return ServerResult(
        Method.OCSP, url, Status.UNKNOWN, "the OCSP responder does not know the certificate", True
    )


# ---------------------------------------------------------------- CRL


class CRLProblem(ValueError):
    pass


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    try:
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise CRLProblem(f"malformed CRL: {exc}") from None


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def validate_crl(crl: x509.CertificateRevocationList, issuer: x509.Certificate, at: datetime) -> None:
    """The CRL is the issuer's and current; CRLProblem otherwise."""
    try:
        signed = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError, UnsupportedAlgorithm):
        signed = False
    if not signed or crl.issuer != issuer.subject:
        raise CRLProblem(f"CRL is not signed by CA {issuer.subject.rfc4514_string()}")
    if crl.next_update_utc is None:
        raise CRLProblem("CRL NextUpdate is not set")
    if at > crl.next_update_utc:
        raise CRLProblem(f"expired CRL: NextUpdate was {crl.next_update_utc.isoformat()}")
    if crl.last_update_utc > at + CLOCK_SKEW:
        raise CRLProblem(f"CRL thisUpdate {crl.last_update_utc.isoformat()} is in the future")
    try:
        extensions = list(crl.extensions)
    except ValueError as exc:
        raise CRLProblem(f"malformed CRL extensions: {exc}") from None
    tolerated = {
        ExtensionOID.FRESHEST_CRL,
        ExtensionOID.ISSUING_DISTRIBUTION_POINT,
        ExtensionOID.DELTA_CRL_INDICATOR,
    }
    for ext in extensions:
        if ext.critical and ext.oid not in tolerated:
            raise CRLProblem(f"unsupported critical extension found in CRL: {ext.oid.dotted_string}")


def validate_bundle(
    base: x509.CertificateRevocationList,
    delta: x509.CertificateRevocationList | None,
    issuer: x509.Certificate,
    at: datetime,
) -> None:
    try:
        base.extensions.get_extension_for_oid(ExtensionOID.DELTA_CRL_INDICATOR)
    except x509.ExtensionNotFound:
        pass
    else:
        raise CRLProblem("the CRL at a distribution point is a delta CRL, not a base CRL")
    try:
        validate_crl(base, issuer, at)
    except CRLProblem as exc:
        raise CRLProblem(f"failed to validate base CRL: {exc}") from None
    if delta is None:
        return
    try:
        validate_crl(delta, issuer, at)
    except CRLProblem as exc:
        raise CRLProblem(f"failed to validate delta CRL: {exc}") from None
    base_number, delta_number = _crl_number(base), _crl_number(delta)
    if base_number is None or delta_number is None:
        raise CRLProblem("base and delta CRLs must carry CRL numbers")
    if delta_number <= base_number:
        raise CRLProblem(
            f"delta CRL number {delta_number} is not greater than the base CRL number {base_number}"
        )
    try:
        indicator = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value
    except x509.ExtensionNotFound:
        raise CRLProblem("delta CRL indicator extension is not found") from None
    if indicator.crl_number > base_number:
        raise CRLProblem(
            f"delta CRL indicator {indicator.crl_number} is not less than or equal to the base CRL number "
            f"{base_number}"
        )


def crl_entry_status(
    cert: x509.Certificate,
    crls: Sequence[x509.CertificateRevocationList],
    signing_time: datetime | None,
) -> tuple[Status, str]:
    """Whether the merged entries of base (+ delta) list `cert`; CRLProblem for an unreadable entry."""
    latest_hold: tuple[datetime, x509.ReasonFlags] | None = None
    for crl in crls:
        for entry in crl:
            if entry.serial_number != cert.serial_number:
                continue
            try:
                extensions = list(entry.extensions)
            except ValueError as exc:
                raise CRLProblem(f"malformed CRL entry: {exc}") from None
            reason = x509.ReasonFlags.unspecified
            invalid: datetime | None = None
            for ext in extensions:
                if ext.oid == CRLEntryExtensionOID.CRL_REASON:
                    reason = ext.value.reason
                elif ext.oid == CRLEntryExtensionOID.INVALIDITY_DATE:
                    invalid = ext.value.invalidity_date_utc
                elif ext.critical:
                    raise CRLProblem(
                        f"unsupported critical extension found in CRL entry: {ext.oid.dotted_string}"
                    )
            if signing_time is not None and invalid is not None and signing_time < invalid:
                return Status.OK, (
                    f"listed, but invalid only from {invalid.isoformat()}, after the authentic signing time"
                )
            if reason in (x509.ReasonFlags.certificate_hold, x509.ReasonFlags.remove_from_crl):
                when = entry.revocation_date_utc
                if latest_hold is None or latest_hold[0] < when:
                    latest_hold = (when, reason)
                continue
            return Status.REVOKED, f"revoked at {entry.revocation_date_utc.isoformat()} ({reason.name})"
    if latest_hold is not None and latest_hold[1] is x509.ReasonFlags.certificate_hold:
        return Status.REVOKED, f"on hold since {latest_hold[0].isoformat()} (certificateHold)"
    return Status.OK, "not listed"


def _crl_status(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    evidence: RevocationEvidence,
    at: datetime,
    signing_time: datetime | None,
) -> tuple[Status, list[ServerResult], tuple[Need, ...]]:
    servers: list[ServerResult] = []
    for url in crl_urls(cert):

        def unknown(why: str, url: str = url) -> tuple[Status, list[ServerResult], tuple[Need, ...]]:
            return Status.UNKNOWN, [ServerResult(Method.CRL, url, Status.UNKNOWN, why)], ()

        if not _http(url):
            return unknown(f"unsupported scheme {urlsplit(url).scheme!r}: only http CRL URLs are fetched")
        need = Need("crl", url, issuer=issuer)
        got = evidence.lookup(need)
        if got is None:
            return Status.UNKNOWN, [], (need,)
        if got.data is None:
            return unknown(f"failed to download CRL: {got.error}")
        try:
            base = load_crl(got.data)
            delta_urls = freshest_crl_urls(base.extensions)
        except (CRLProblem, ValueError) as exc:
            return unknown(str(exc))
        delta: x509.CertificateRevocationList | None = None
        last_error = ""
        for delta_url in delta_urls:
            if not _http(delta_url):
                last_error = f"unsupported delta CRL scheme {urlsplit(delta_url).scheme!r}"
                continue
            delta_need = Need("crl", delta_url, issuer=issuer)
            got_delta = evidence.lookup(delta_need)
            if got_delta is None:
                return Status.UNKNOWN, [], (delta_need,)
            if got_delta.data is None:
                last_error = f"failed to download delta CRL {delta_url}: {got_delta.error}"
                continue
            try:
                delta = load_crl(got_delta.data)
            except CRLProblem as exc:
                last_error = f"delta CRL {delta_url}: {exc}"
                continue
            break
        if delta_urls and delta is None:
            return unknown(last_error)
        try:
            validate_bundle(base, delta, issuer, at)
            status, detail = crl_entry_status(cert, [base] if delta is None else [base, delta], signing_time)
        except CRLProblem as exc:
            return unknown(str(exc))
        cached = " (cached)" if got.from_cache else ""
        result = ServerResult(Method.CRL, url, status, detail + cached)
        if status is Status.REVOKED:
            return Status.REVOKED, [result], ()
        servers.append(result)
    return Status.OK, servers, ()


# ---------------------------------------------------------------- one certificate, one chain


def cert_status(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    evidence: RevocationEvidence,
    at: datetime,
    signing_time: datetime | None = None,
) -> CertResult:
    """Judge `cert` on the evidence; a result with `missing` set asks for more before it is final."""
    subject = cert.subject.rfc4514_string()
    try:
        ocsp_list, crl_list = ocsp_urls(cert), crl_urls(cert)
    except ValueError as exc:
        return CertResult(
            subject,
            Status.UNKNOWN,
            Method.NONE,
            (ServerResult(Method.NONE, "", Status.UNKNOWN, f"unreadable extensions: {exc}"),),
        )
    if not ocsp_list and not crl_list:
        return CertResult(subject, Status.NON_REVOCABLE, Method.NONE)
    ocsp_servers: list[ServerResult] = []
    if ocsp_list:
        request = build_ocsp_request(cert, issuer)
        for url in ocsp_list:
            if not _http(url):
                scheme = urlsplit(url).scheme
                ocsp_servers.append(
                    ServerResult(
                        Method.OCSP, url, Status.UNKNOWN, f"OCSP server protocol {scheme!r} is not supported"
                    )
                )
                continue
            need = Need("ocsp", url, request)
            got = evidence.lookup(need)
            if got is None:
                return CertResult(subject, Status.UNKNOWN, Method.OCSP, tuple(ocsp_servers), (need,))
            if got.data is None:
                ocsp_servers.append(ServerResult(Method.OCSP, url, Status.UNKNOWN, got.error or "no answer"))
                continue
            judged = judge_ocsp(got.data, cert, issuer, at, signing_time, url)
            if judged.status in (Status.OK, Status.REVOKED) or judged.definitive:
                ocsp_servers = [judged]  # one valid answer decides; other servers' errors do not matter
                break
            ocsp_servers.append(judged)
        if ocsp_servers and ocsp_servers[0].status in (Status.OK, Status.REVOKED):
            return CertResult(subject, ocsp_servers[0].status, Method.OCSP, tuple(ocsp_servers))
        if not crl_list:
            return CertResult(subject, Status.UNKNOWN, Method.OCSP, tuple(ocsp_servers))
    status, crl_servers, missing = _crl_status(cert, issuer, evidence, at, signing_time)
    method = Method.OCSP_FALLBACK_CRL if ocsp_list else Method.CRL
    return CertResult(subject, status, method, (*ocsp_servers, *crl_servers), missing)


def chain_status(
    chain: Sequence[x509.Certificate],
    evidence: RevocationEvidence,
    at: datetime,
    signing_time: datetime | None = None,
    purpose: Purpose = Purpose.CODE_SIGNING,
) -> ChainStatus:
    """Every certificate of `chain` (leaf first, each issued by the next, root last) judged on `evidence`."""
    if not chain:
        return ChainStatus(Status.UNKNOWN, (), purpose)
    results = [cert_status(c, chain[i + 1], evidence, at, signing_time) for i, c in enumerate(chain[:-1])]
    results.append(CertResult(chain[-1].subject.rfc4514_string(), Status.NON_REVOCABLE, Method.NONE))
    if any(r.status is Status.REVOKED for r in results):
        status = Status.REVOKED
    elif all(r.status in (Status.OK, Status.NON_REVOCABLE) for r in results):
        status = Status.OK
    else:
        status = Status.UNKNOWN
    return ChainStatus(status, tuple(results), purpose)


def chain_revocable(chain: Sequence[x509.Certificate]) -> bool:
    """Some certificate below the root names an OCSP or CRL location."""
    return any(revocable(c) for c in chain[:-1])
