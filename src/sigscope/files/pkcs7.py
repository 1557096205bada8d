"""PKCS#7 / CMS SignedData as JAR signature blocks and PowerShell Authenticode blocks carry it.

Pure: bytes, trust roots and a clock in; records and named checks out. asn1crypto parses (it keeps the
original encodings, which the signature and digest checks need), cryptography verifies signatures and
chains; pyhanko-certvalidator validates the chains cryptography's verifier refuses for their SHA-1
signatures (old code-signing and TSA hierarchies), reported as such.

Timestamps are RFC 3161 tokens (the signer's unsigned attribute id-aa-timeStampToken, as jarsigner writes
it, or Microsoft's 1.3.6.1.4.1.311.3.3.1) or legacy Authenticode PKCS#9 countersignatures. Their message
imprint covers the signer's signature value.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from asn1crypto import algos, cms, core
from asn1crypto import parser as asn1_parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID

from sigscope.errors import IntegrityError
from sigscope.files.base import FileSignature, TimestampInfo
from sigscope.model import CertificateInfo, Check, Outcome
from sigscope.trust import certs, timestamp
from sigscope.trust.chain import ANY_EKU, CODE_SIGNING, TIME_STAMPING, ChainResult, verify_chain

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
OID_TIMESTAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"  # id-aa-timeStampToken (RFC 3161 appendix A)
OID_MS_RFC3161 = "1.3.6.1.4.1.311.3.3.1"  # Authenticode's home for the same token
OID_COUNTERSIGNATURE = "1.2.840.113549.1.9.6"  # PKCS#9 countersignature (legacy Authenticode timestamps)

P = ParamSpec("P")
R = TypeVar("R")

# Parser failures asn1crypto raises lazily, on first access to a malformed part.
PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, EOFError)

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_WEAK_HASHES = {"md5", "sha1"}


def hash_algorithm(name: str) -> hashes.HashAlgorithm:
    try:
        return _HASHES[name]()
    except KeyError:
        raise IntegrityError(f"unsupported digest algorithm {name}") from None


def digest(name: str, data: bytes) -> bytes:
    if name not in _HASHES:
        raise IntegrityError(f"unsupported digest algorithm {name}")
    return hashlib.new(name, data).digest()


@dataclass
class SignerData:
    """One SignerInfo of a SignedData, with the certificates the SignedData carries."""

    signer_info: cms.SignerInfo
    certificates: tuple[x509.Certificate, ...]
    signer_cert: x509.Certificate | None
    digest_algorithm: str  # "sha256", ...
    content_type: str  # dotted OID of the encapsulated content
    content: bytes | None  # the bytes the message digest covers, when the content is encapsulated
    content_der: bytes | None = None  # the encapsulated value's full DER (for Authenticode's SpcIndirectData)

    @property
    def signature_value(self) -> bytes:
        return bytes(self.signer_info["signature"].native)

    @property
    def intermediates(self) -> list[x509.Certificate]:
        return [c for c in self.certificates if c != self.signer_cert]


def load_signed_data(der: bytes, what: str = "signature block") -> SignerData:
    """The first SignerInfo of a DER ContentInfo(SignedData). Raises IntegrityError when malformed."""
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].dotted != OID_SIGNED_DATA:
            raise IntegrityError(f"{what} is not a PKCS#7 SignedData ({info['content_type'].dotted})")
        return _signer_data(info["content"], what)
    except IntegrityError:
        raise
    except PARSE_ERRORS as exc:
        raise IntegrityError(f"{what} is not valid PKCS#7: {exc}") from None


def _signer_data(signed: cms.SignedData, what: str) -> SignerData:
    infos = signed["signer_infos"]
    if len(infos) == 0:
        raise IntegrityError(f"{what} has no signer")
    signer_info = infos[0]
    certificates: list[x509.Certificate] = []
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue  # attribute certificates and the like name nobody we report
        try:
            # cryptography warns about JDK quirks (NULL DSA parameters); a report shows what is there.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                certificates.append(x509.load_der_x509_certificate(choice.chosen.dump()))
        except ValueError as exc:
            raise IntegrityError(f"{what} carries a malformed certificate: {exc}") from None
    encap = signed["encap_content_info"]
    content_type = encap["content_type"].dotted
    content: bytes | None = None
    content_der: bytes | None = None
    value = encap["content"]
    if value is not None and value.contents is not None:
        if content_type in (OID_DATA, OID_TST_INFO) and isinstance(value, core.OctetString):
            content = bytes(value.native)
        else:
            # PKCS#7 v1.5 content ([0] EXPLICIT ANY, e.g. Authenticode's SpcIndirectDataContent): the
            # digest covers the content octets of the inner value, without its tag and length.
            inner = value.parsed if isinstance(value, core.Any) else value
            content = bytes(inner.contents)
            content_der = _der_sequence(content)
    return SignerData(
        signer_info=signer_info,
        certificates=tuple(certificates),
        signer_cert=_find_signer(signer_info, certificates),
        digest_algorithm=str(signer_info["digest_algorithm"]["algorithm"].native),
        content_type=content_type,
        content=content,
        content_der=content_der,
    )


def _der_sequence(contents: bytes) -> bytes:
    """A SEQUENCE around content octets (asn1crypto keeps the explicit [0] on the value it hands out)."""
    size = len(contents)
    if size < 0x80:
        return b"\x30" + bytes([size]) + contents
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return b"\x30" + bytes([0x80 | len(length)]) + length + contents


def _find_signer(
    signer_info: cms.SignerInfo, certificates: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    sid = signer_info["sid"]
    if sid.name == "issuer_and_serial_number":
        issuer = sid.chosen["issuer"].dump()
        serial = sid.chosen["serial_number"].native
        for cert in certificates:
            if cert.serial_number == serial and cert.issuer.public_bytes() == issuer:
                return cert
        # Name encodings differ between tools (PrintableString vs UTF8String); compare by value too.
        for cert in certificates:
            if cert.serial_number == serial and _same_name(cert, sid.chosen["issuer"]):
                return cert
        return None
    key_id = bytes(sid.chosen.native)
    for cert in certificates:
        try:
            ski = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
        except (x509.ExtensionNotFound, ValueError):
            continue
        if isinstance(ski, x509.SubjectKeyIdentifier) and ski.digest == key_id:
            return cert
    return None


def _same_name(cert: x509.Certificate, name: asn1_x509.Name) -> bool:
    try:
        return bool(asn1_x509.Name.load(cert.issuer.public_bytes()) == name)
    except PARSE_ERRORS:
        return False


def _attribute(attributes: cms.CMSAttributes | None, oid: str) -> list[core.Asn1Value]:
    if attributes is None:
        return []
    out: list[core.Asn1Value] = []
    for attribute in attributes:
        if attribute["type"].dotted == oid:
            out.extend(attribute["values"])
    return out


def signing_time(data: SignerData) -> datetime | None:
    """The signer's own claim (PKCS#9 signingTime): informational, never a trusted time."""
    try:
        values = _attribute(data.signer_info["signed_attrs"], "1.2.840.113549.1.9.5")
        if values:
            value = values[0].native
            return value if isinstance(value, datetime) else None
    except PARSE_ERRORS:
        return None
    return None


def verify_signer(data: SignerData, content: bytes) -> Check:
    """`signature`: the message digest attribute covers `content`, the signature covers the signed
    attributes (or `content` itself when there are none), under the signer certificate's key."""
    if data.signer_cert is None:
        return Check.failed("signature", "the signing certificate is not in the signature block")
    try:
        signed_attrs = data.signer_info["signed_attrs"]
        if signed_attrs is not None and len(signed_attrs) > 0:
            digests = _attribute(signed_attrs, "1.2.840.113549.1.9.4")
            if len(digests) != 1:
                return Check.failed("signature", "signed attributes lack a single messageDigest")
            if bytes(digests[0].native) != digest(data.digest_algorithm, content):
                return Check.failed("signature", "messageDigest does not match the signed content")
            types = _attribute(signed_attrs, "1.2.840.113549.1.9.3")
            if types and types[0].dotted != data.content_type:
                return Check.failed("signature", "contentType attribute differs from the signed content")
            # The signature covers the attributes' DER as a SET, not the [0] IMPLICIT form they travel in.
            raw = signed_attrs.dump()
            signed = b"\x31" + raw[1:]
        else:
            signed = content
        algorithm = data.signer_info["signature_algorithm"]
        ok = _verify_raw(data.signer_cert, algorithm, data.digest_algorithm, data.signature_value, signed)
    except IntegrityError as exc:
        return Check.failed("signature", exc.message)
    except PARSE_ERRORS as exc:
        return Check.failed("signature", f"malformed signer info: {exc}")
    if not ok:
        return Check.failed("signature", "the signature does not verify under the signing certificate's key")
    return Check.passed("signature", f"{_key_name(data.signer_cert)} signature with {data.digest_algorithm}")


def _key_name(cert: x509.Certificate) -> str:
    try:
        info = certs.public_key_info(cert.public_key())
    except (ValueError, UnsupportedAlgorithm):
        return "unknown key"
    return f"{info.key_type}-{info.key_size}"


def _verify_raw(
    cert: x509.Certificate,
    algorithm: cms.SignedDigestAlgorithm,
    digest_name: str,
    signature: bytes,
    signed: bytes,
) -> bool:
    try:
        key = cert.public_key()
        scheme = signature_scheme(algorithm)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise IntegrityError(f"unsupported signature algorithm or key: {exc}") from None
    # The digest of a "sha256_rsa"-style OID wins over the SignerInfo's digestAlgorithm, as OpenSSL does.
    hash_name = algorithm.hash_algo if algorithm["algorithm"].native not in _PLAIN_SCHEMES else digest_name
    chosen = hash_algorithm(hash_name)
    try:
        if scheme == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), chosen)
        elif scheme == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            params = algorithm["parameters"]
            pss_hash = hash_algorithm(params["hash_algorithm"]["algorithm"].native)
            salt = int(params["salt_length"].native)
            key.verify(signature, signed, padding.PSS(padding.MGF1(pss_hash), salt), pss_hash)
        elif scheme == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(chosen))
        elif scheme == "dsa" and isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, signed, chosen)
        else:
            raise IntegrityError(f"signature algorithm {scheme} does not fit the certificate's key")
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_PLAIN_SCHEMES = {"rsassa_pkcs1v15", "rsa", "ecdsa", "dsa", "rsassa_pss", _EC_PUBLIC_KEY}


def signature_scheme(algorithm: algos.SignedDigestAlgorithm) -> str:
    """asn1crypto's scheme name of a signatureAlgorithm (ValueError when unknown). id-ecPublicKey in place
    of ecdsa-with-SHA* (apksigner's JAR signer writes it) is ECDSA with the digestAlgorithm, as jarsigner
    and apksigner read it."""
    if algorithm["algorithm"].dotted == _EC_PUBLIC_KEY:
        return "ecdsa"
    return str(algorithm.signature_algo)


# Anything a malformed input can make the parsers raise, for the handlers' last line of defence.
MALFORMED = (*PARSE_ERRORS, UnsupportedAlgorithm)


def guarded(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn stray parser exceptions into IntegrityError: corrupt input is an error, never a crash."""

    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except MALFORMED as exc:
                raise IntegrityError(f"malformed {what}: {type(exc).__name__}: {exc}") from None

        return inner

    return wrap


# ---------------------------------------------------------------------------------------------- chains


def chain_check(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
    eku: Sequence[x509.ObjectIdentifier] | None,
    name: str = "trusted-chain",
) -> tuple[Check, ChainResult]:
    """Path validation to the user's roots as a named check (see `validate_chain`)."""
    try:
        result = validate_chain(leaf, intermediates, roots, at, eku)
    except (UnsupportedAlgorithm, TypeError, ValueError) as exc:
        result = ChainResult(False, detail=f"unusable certificate: {exc}")
    if result.ok:
        subject = result.root.subject.rfc4514_string() if result.root is not None else "?"
        return Check.passed(
            name, f"chains to {subject}" + (f" ({result.detail})" if result.detail else "")
        ), result
    return Check.failed(name, result.detail or "no path to a trusted root"), result


def validate_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
    eku: Sequence[x509.ObjectIdentifier] | None,
) -> ChainResult:
    """trust/chain.py first; only a chain with SHA-1 certificate signatures (which cryptography refuses by
    design, and old code-signing PKIs still carry) goes to pyhanko-certvalidator, where the EKU, the clock
    and the user's roots still apply. Such a result's detail starts with "SHA-1"."""
    result = verify_chain(leaf, intermediates, roots, at, eku=eku)
    if not result.ok and roots and _has_weak_hash([leaf, *intermediates]):
        return _legacy_chain(leaf, intermediates, roots, at, eku)
    return result


def record_chain(sig: FileSignature, check: Check, result: ChainResult) -> None:
    """Add the chain check to a signature, with its chain status and the SHA-1 warning."""
    sig.checks.append(check)
    sig.chain_status = "trusted" if check.outcome is Outcome.PASSED else f"untrusted: {check.detail}"
    if result.ok and result.detail.startswith("SHA-1"):
        sig.warnings.append("the chain uses SHA-1 signatures (validated by pyhanko-certvalidator)")


def jar_eku(leaf: x509.Certificate) -> tuple[x509.ObjectIdentifier, ...] | None:
    """jarsigner's rule: no extendedKeyUsage is fine; one present must allow code signing or any usage."""
    try:
        usage = leaf.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        return (CODE_SIGNING,)
    if isinstance(usage, x509.ExtendedKeyUsage) and ANY_EKU in usage:
        return None
    return (CODE_SIGNING,)


def _has_weak_hash(chain: Sequence[x509.Certificate]) -> bool:
    for cert in chain:
        try:
            algorithm = cert.signature_hash_algorithm
        except UnsupportedAlgorithm:
            continue
        if algorithm is not None and algorithm.name in _WEAK_HASHES:
            return True
    return False


_EKU_ASN1 = {CODE_SIGNING.dotted_string: "code_signing", TIME_STAMPING.dotted_string: "time_stamping"}


def _legacy_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
    eku: Sequence[x509.ObjectIdentifier] | None,
) -> ChainResult:
    from pyhanko_certvalidator import CertificateValidator, ValidationContext, errors

    def load(cert: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))

    wanted = {_EKU_ASN1[o.dotted_string] for o in eku or () if o.dotted_string in _EKU_ASN1}
    context = ValidationContext(
        trust_roots=[load(r) for r in roots],
        moment=at,
        allow_fetching=False,
        revocation_mode="soft-fail",
        weak_hash_algos={"md2", "md5"},
    )
    validator = CertificateValidator(
        load(leaf), intermediate_certs=[load(c) for c in intermediates], validation_context=context
    )

    async def run() -> object:
        return await validator.async_validate_usage(  # type: ignore[no-untyped-call]
            set(), extended_key_usage=wanted or None
        )

    try:
        path = _run_async(run)
    except (errors.PathError, errors.ValidationError) as exc:
        return ChainResult(False, detail=f"{exc} (SHA-1 chain)")
    except (ValueError, TypeError) as exc:
        return ChainResult(False, detail=f"legacy chain validation failed: {exc}")
    chain = [x509.load_der_x509_certificate(c.dump()) for c in reversed(list(path))]  # type: ignore[call-overload]
    return ChainResult(True, chain=tuple(chain), detail="SHA-1 chain accepted by pyhanko-certvalidator")


def _run_async(factory: object) -> object:
    """Run a coroutine to completion whether or not this thread already runs an event loop."""
    assert callable(factory)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


# ------------------------------------------------------------------------------------------ timestamps


@dataclass
class Timestamp:
    """A timestamp found on a signer, its report record and (after `check_timestamp`) whether it holds."""

    info: TimestampInfo
    valid: bool = False


def find_timestamp(data: SignerData, now: datetime) -> tuple[str, bytes] | None:
    """(kind, DER) of the first timestamp in the signer's unsigned attributes."""
    try:
        unsigned = data.signer_info["unsigned_attrs"]
        for oid in (OID_TIMESTAMP_TOKEN, OID_MS_RFC3161):
            values = _attribute(unsigned, oid)
            if values:
                return "rfc3161", values[0].dump()
        counters = _attribute(unsigned, OID_COUNTERSIGNATURE)
        if counters:
            return "authenticode", counters[0].dump()
    except PARSE_ERRORS as exc:
        raise IntegrityError(f"malformed unsigned attributes: {exc}") from None
    return None


def read_timestamp(
    data: SignerData,
    now: datetime,
    *,
    verify: bool,
    roots: Sequence[x509.Certificate] = (),
) -> Timestamp | None:
    """The signer's timestamp: time and authority always; with `verify`, imprint, token signature and
    the TSA chain (timeStamping EKU) to `roots` at the stamped time. A broken token is reported in
    the record, never raised: it must not hide a valid signature."""
    found = find_timestamp(data, now)
    if found is None:
        return None
    kind, der = found
    try:
        if kind == "rfc3161":
            return _rfc3161(der, data, now, verify, roots)
        return _countersignature(der, data, now, verify, roots)
    except (IntegrityError, *PARSE_ERRORS) as exc:
        detail = exc.message if isinstance(exc, IntegrityError) else f"malformed timestamp: {exc}"
        return Timestamp(TimestampInfo(kind=kind, status=Outcome.FAILED, detail=detail))


def _rfc3161(
    der: bytes, outer: SignerData, now: datetime, verify: bool, roots: Sequence[x509.Certificate]
) -> Timestamp:
    # The shared RFC 3161 verifier (trust/timestamp.py) checks imprint, token signature, the ESS
    # signing-certificate binding and the TSA chain (critical timeStamping EKU) at genTime.
    token = timestamp.parse_token(der)
    gen_time = token.gen_time.astimezone(UTC)
    authority = certs.summarize(token.signer, now) if token.signer is not None else None
    info = TimestampInfo(kind="rfc3161", time=gen_time, authority=authority)
    if not verify:
        return Timestamp(info)
    result = timestamp.verify_timestamp(token, outer.signature_value, list(roots))
    if not result.ok:
        return _failed(info, result.detail)
    info.status = Outcome.PASSED
    info.detail = result.detail
    return Timestamp(info, valid=True)


def _countersignature(
    der: bytes, outer: SignerData, now: datetime, verify: bool, roots: Sequence[x509.Certificate]
) -> Timestamp:
    signer_info = cms.SignerInfo.load(der)
    token = SignerData(
        signer_info=signer_info,
        certificates=outer.certificates,
        signer_cert=_find_signer(signer_info, outer.certificates),
        digest_algorithm=str(signer_info["digest_algorithm"]["algorithm"].native),
        content_type=OID_DATA,
        content=None,
    )
    stamped = signing_time(token)
    authority = certs.summarize(token.signer_cert, now) if token.signer_cert is not None else None
    info = TimestampInfo(
        kind="authenticode", time=stamped.astimezone(UTC) if stamped else None, authority=authority
    )
    if not verify:
        return Timestamp(info)
    if stamped is None:
        return _failed(info, "countersignature has no signing time")
    # A PKCS#9 countersignature's messageDigest covers the outer signature value; its content type
    # attribute names id-data.
    return _settle_token(info, token, outer.signature_value, stamped, roots)


def _settle_token(
    info: TimestampInfo,
    token: SignerData,
    content: bytes,
    at: datetime,
    roots: Sequence[x509.Certificate],
) -> Timestamp:
    check = verify_signer(token, content)
    if check.outcome is not Outcome.PASSED:
        return _failed(info, f"token signature: {check.detail}")
    assert token.signer_cert is not None
    chain, _ = chain_check(token.signer_cert, token.intermediates, roots, at, (TIME_STAMPING,), "tsa-chain")
    if chain.outcome is not Outcome.PASSED:
        return _failed(info, f"TSA chain: {chain.detail}")
    info.status = Outcome.PASSED
    info.detail = f"token signature holds; TSA {chain.detail}"
    return Timestamp(info, valid=True)


def _failed(info: TimestampInfo, detail: str) -> Timestamp:
    info.status = Outcome.FAILED
    info.detail = detail
    return Timestamp(info)


def timestamp_check(stamp: Timestamp | None, warnings: list[str]) -> Check:
    """The `timestamp` check: passed for a valid token; a broken one is a warning (validity is then
    judged now), never a silent pass and never by itself an invalid signature."""
    if stamp is None:
        return Check.skipped("timestamp", "no timestamp; certificate validity judged at the current time")
    if stamp.valid:
        when = stamp.info.time.isoformat() if stamp.info.time else "?"
        return Check.passed("timestamp", f"{stamp.info.kind} timestamp {when}: {stamp.info.detail}")
    warnings.append(f"timestamp is not valid ({stamp.info.detail}); certificate validity judged now")
    return Check.skipped("timestamp", f"not valid: {stamp.info.detail}")


# ------------------------------------------------------------------------------- facts for reports
#
# A report (no --verify) needs the signer's certificate, the carried chain, the digest algorithm and the
# timestamp's time and authority, and nothing that proves them. asn1crypto's object model builds a
# Python object per node it touches (~1 ms per signed file, most of a scan's cost for signed files);
# these readers walk the same DER by offsets (DER's common headers decoded inline, anything else by
# asn1crypto's own TLV parser, `asn1crypto.parser`) and decode only the leaves a report shows. They
# never verify; --verify takes the asn1crypto path above, which is also what every fact reported under
# --verify comes from.

_OIDS: dict[bytes, str] = {}
_UNIVERSAL, _CONTEXT = 0, 2
_INTEGER, _OCTET_STRING, _OID, _UTC_TIME, _GENERALIZED_TIME, _SEQUENCE, _SET = 2, 4, 6, 23, 24, 16, 17


class Tlv:
    """One DER value: class, tag, the whole encoding and its contents.

    A value is offsets into the buffer it was read from, so walking a signature copies no bytes; `der`
    and `body` slice on demand (a report reads the bytes of a handful of the values it walks)."""

    __slots__ = ("_at", "_data", "_end", "_start", "_stop", "cls", "tag")

    def __init__(self, cls: int, tag: int, data: bytes, start: int, at: int, stop: int, end: int) -> None:
        # data[start:at] is the header, data[at:stop] the contents, data[stop:end] an indefinite
        # length's end-of-contents octets
        self.cls, self.tag, self._data = cls, tag, data
        self._start, self._at, self._stop, self._end = start, at, stop, end

    @property
    def der(self) -> bytes:
        if self._start == 0 and self._end == len(self._data):
            return self._data
        return self._data[self._start : self._end]

    @property
    def body(self) -> bytes:
        return self._data[self._at : self._stop]

    @property
    def plain(self) -> bool:
        """Definite length (as DER requires): no end-of-contents octets after the contents."""
        return self._stop == self._end

    @property
    def constructed(self) -> bool:
        return bool(self._data[self._start] & 0x20)

    def expect(self, cls: int, tag: int, what: str) -> Tlv:
        if self.cls != cls or self.tag != tag:
            raise ValueError(f"{what}: unexpected tag {self.cls}/{self.tag}")
        return self

    def children(self) -> list[Tlv]:
        return _walk(self._data, self._at, self._stop)

    def value(self, strict: bool = True) -> Tlv:
        """The one value the contents encode (an OCTET STRING's wrapped DER), as `tlv` reads it."""
        return _one(self._data, self._at, self._stop, strict)


def _walk(data: bytes, at: int, limit: int) -> list[Tlv]:
    """The values encoded one after another in data[at:limit] (each as _first reads it)."""
    out: list[Tlv] = []
    while at < limit:
        value = _first(data, at, limit)
        out.append(value)
        at = value._end
    return out


def _slow(data: bytes, at: int, limit: int) -> Tlv:
    (cls, _method, tag, header, contents, _trailer), end = asn1_parser._parse(data, limit, at)
    body = at + len(header)
    return Tlv(cls, tag, data, at, body, body + len(contents), end)


def _one(data: bytes, at: int, limit: int, strict: bool) -> Tlv:
    found = _first(data, at, limit) if at < limit else _slow(data, at, limit)  # the latter raises
    if strict and found._end != limit:
        # asn1crypto.parser.parse's words
        raise ValueError(f"Extra data - {limit - found._end} bytes of trailing data were provided")
    return found


def _first(data: bytes, at: int, limit: int) -> Tlv:
    """The value at data[at], which must end by `limit`.

    The common case (low tag number, definite length of at most four octets, in bounds) is decoded
    here; anything else (a high tag number, an indefinite length, a value running past `limit`) goes
    to asn1crypto's parser, which decides and words the error exactly as it always did."""
    first = data[at]
    body = at + 2
    if first & 31 != 31 and body <= limit:
        length = data[at + 1]
        if length >= 0x80:
            body += length - 0x80
            length = int.from_bytes(data[at + 2 : body], "big") if 0x80 < length <= 0x84 else -1
        end = body + length
        if length >= 0 and end <= limit:
            return Tlv(first >> 6, first & 31, data, at, body, end, end)
    return _slow(data, at, limit)


def tlvs(data: bytes) -> list[Tlv]:
    """The values encoded one after another in `data` (a constructed value's contents)."""
    return _walk(data, 0, len(data))


def tlv(data: bytes, strict: bool = True) -> Tlv:
    """The value `data` encodes; trailing bytes are an error when `strict`, else ignored (padding)."""
    if not isinstance(data, bytes):
        raise TypeError(f"contents must be a byte string, not {type(data).__name__}")
    return _one(data, 0, len(data), strict)


def oid(value: Tlv) -> str:
    value.expect(_UNIVERSAL, _OID, "object identifier")
    dotted = _OIDS.get(value.der)
    if dotted is None:
        dotted = core.ObjectIdentifier.load(value.der).dotted
        if len(_OIDS) < 4096:  # the same few dozen OIDs recur; hostile input must not grow this
            _OIDS[value.der] = dotted
    return dotted


def integer(value: Tlv) -> int:
    value.expect(_UNIVERSAL, _INTEGER, "integer")
    return int.from_bytes(value.body, "big", signed=True)


def der_time(value: Tlv) -> datetime:
    if value.cls == _UNIVERSAL and value.plain and not value.constructed:
        # DER's one spelling of each ("YYMMDDHHMMSSZ", "YYYYMMDDHHMMSSZ") read directly; every other
        # spelling (fractions, offsets, BER) goes to asn1crypto below, which judges it as before
        raw = value.body
        if value.tag == _UTC_TIME and len(raw) == 13 and raw[12] == 0x5A and raw[:12].isdigit():
            year = int(raw[0:2])
            return datetime(
                year + (2000 if year < 50 else 1900), *_clock(raw, 2), tzinfo=UTC
            )  # X.509's window, as asn1crypto reads UTCTime
        if value.tag == _GENERALIZED_TIME and len(raw) == 15 and raw[14] == 0x5A and raw[:14].isdigit():
            year = int(raw[0:4])
            if year:  # year 0 is asn1crypto's extended_datetime
                return datetime(year, *_clock(raw, 4), tzinfo=UTC)
    if value.cls == _UNIVERSAL and value.tag == _UTC_TIME:
        parsed = core.UTCTime.load(value.der).native
    elif value.cls == _UNIVERSAL and value.tag == _GENERALIZED_TIME:
        parsed = core.GeneralizedTime.load(value.der).native
    else:
        raise ValueError("time: neither UTCTime nor GeneralizedTime")
    if not isinstance(parsed, datetime):
        raise ValueError("time: not a point in time")
    return parsed.astimezone(UTC)


def _clock(raw: bytes, at: int) -> tuple[int, int, int, int, int]:
    """Month, day, hour, minute, second from the digits at `at`."""
    return (
        int(raw[at : at + 2]),
        int(raw[at + 2 : at + 4]),
        int(raw[at + 4 : at + 6]),
        int(raw[at + 6 : at + 8]),
        int(raw[at + 8 : at + 10]),
    )


def digest_name(algorithm: Tlv) -> str:
    """The hashlib name of an AlgorithmIdentifier's OID (the dotted OID when unknown)."""
    parts = algorithm.expect(_UNIVERSAL, _SEQUENCE, "algorithm").children()
    if not parts:
        raise ValueError("algorithm identifier is empty")
    # asn1crypto's names, so a report says what `.native` says under --verify
    return str(algos.DigestAlgorithmId.map(oid(parts[0])))


@dataclass
class SignerFacts:
    """What a SignerInfo says about itself, undecoded beyond what a report shows."""

    issuer: bytes | None  # the sid's issuer Name (DER), or None for a subjectKeyIdentifier sid
    serial: int | None
    key_id: bytes | None
    digest_algorithm: str
    signed: Attributes
    unsigned: Attributes

    def find(self, pool: Sequence[x509.Certificate], by_value: bool = True) -> x509.Certificate | None:
        """The certificate the sid names, matched as the verifying path matches it: identical issuer DER,
        else the same name by value (`by_value`, _find_signer's rule) or by asn1crypto's re-encoding
        (authenticode.py's rule)."""
        if self.issuer is not None:
            for cert in pool:
                if cert.serial_number != self.serial:
                    continue
                raw = _issuer_der(cert)
                if raw == self.issuer:
                    return cert
                try:
                    if by_value:
                        if asn1_x509.Name.load(raw) == asn1_x509.Name.load(self.issuer):
                            return cert
                    elif asn1_x509.Name.load(raw).dump() == self.issuer:
                        return cert
                except PARSE_ERRORS:
                    continue
            return None
        for cert in pool:
            try:
                ski = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
            except (x509.ExtensionNotFound, ValueError):
                continue
            if isinstance(ski, x509.SubjectKeyIdentifier) and ski.digest == self.key_id:
                return cert
        return None


@dataclass
class SignedFacts:
    """A CMS SignedData as a report reads it."""

    content_type: str  # dotted
    content: Tlv | None  # the encapsulated value ([0] EXPLICIT's single child)
    certificates: tuple[bytes, ...]  # DER, as carried
    signers: list[Tlv]

    def signer(self, index: int = 0) -> SignerFacts:
        return signer_facts(self.signers[index])

    def load_certificates(self, *, dedupe: bool = False, skip_bad: bool = True) -> list[x509.Certificate]:
        """The carried certificates, as the verifying readers list them: every one in order (`dedupe`:
        each once, as trust/timestamp.py reads a token), an unreadable one skipped (it cannot be the
        signer; authenticode.py) or, without `skip_bad`, an IntegrityError (_signer_data)."""
        found: list[x509.Certificate] = []
        seen: set[bytes] = set()
        for der in self.certificates:
            if dedupe:
                if der in seen:
                    continue
                seen.add(der)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    found.append(_load_certificate(der))
            except ValueError as exc:
                if not skip_bad:
                    raise IntegrityError(f"signature block carries a malformed certificate: {exc}") from None
        return found


class _PerCertificate:
    """Answers that depend only on a certificate (and a few small keys), remembered per certificate
    object. cryptography hashes a certificate by walking it (~3 us, a call to an lru_cache keyed by
    one pays it every time); the report readers get one object per DER from _load_certificate, so its
    identity is the cheap key. Each entry holds its certificate, so the id cannot be reused while the
    entry exists."""

    __slots__ = ("_found",)

    def __init__(self) -> None:
        self._found: dict[tuple[object, ...], tuple[tuple[x509.Certificate, ...], object]] = {}

    def get(self, key: tuple[object, ...], held: tuple[x509.Certificate, ...], compute: Callable[[], R]) -> R:
        hit = self._found.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], held, strict=True)):
            return hit[1]  # type: ignore[return-value]
        value = compute()
        if len(self._found) >= 4096:  # bounded: a scan over many publishers must not grow it
            self._found.clear()
        self._found[key] = (held, value)
        return value


_PER_CERTIFICATE = _PerCertificate()


def summarize(cert: x509.Certificate, now: datetime) -> CertificateInfo:
    """certs.summarize, without hashing the certificate again for a certificate object already seen."""
    return _PER_CERTIFICATE.get((0, id(cert), now), (cert,), lambda: certs.summarize(cert, now))


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """certs.issued_by, remembered per pair of certificate objects (see _PerCertificate)."""
    return _PER_CERTIFICATE.get(
        (1, id(cert), id(issuer)), (cert, issuer), lambda: certs.issued_by(cert, issuer)
    )


def _issuer_der(cert: x509.Certificate) -> bytes:
    # cryptography re-encodes the Name on every call; the same few certificates sign every file
    return _PER_CERTIFICATE.get((2, id(cert)), (cert,), lambda: cert.issuer.public_bytes())


@functools.lru_cache(maxsize=1024)
def _load_certificate(der: bytes) -> x509.Certificate:
    # The same signing and intermediate certificates recur in every file a publisher signed; one object
    # per DER also lets the per-certificate answers above be found by identity.
    return x509.load_der_x509_certificate(der)


def content_info(der: bytes | Tlv, strict: bool = False) -> SignedFacts:
    """ContentInfo → SignedData facts; ValueError when the structure is not that. Bytes after the
    ContentInfo are ignored unless `strict` (Authenticode pads its certificate table entries). A Tlv
    already read (a nested signature, a timestamp token) is read in place."""
    top = der if isinstance(der, Tlv) else tlv(der, strict)
    parts = top.expect(_UNIVERSAL, _SEQUENCE, "ContentInfo").children()
    if len(parts) != 2 or oid(parts[0]) != OID_SIGNED_DATA:
        raise ValueError("ContentInfo does not contain SignedData")
    inner = parts[1].expect(_CONTEXT, 0, "ContentInfo content").children()
    if len(inner) != 1:
        raise ValueError("ContentInfo content is not one value")
    return signed_data(inner[0])


def signed_data(value: Tlv) -> SignedFacts:
    fields = value.expect(_UNIVERSAL, _SEQUENCE, "SignedData").children()
    if len(fields) < 4:
        raise ValueError("SignedData is truncated")
    integer(fields[0])
    fields[1].expect(_UNIVERSAL, _SET, "SignedData digestAlgorithms")
    encap = fields[2].expect(_UNIVERSAL, _SEQUENCE, "EncapsulatedContentInfo").children()
    if not encap:
        raise ValueError("EncapsulatedContentInfo is empty")
    content: Tlv | None = None
    if len(encap) > 1:
        wrapped = encap[1].expect(_CONTEXT, 0, "encapsulated content").children()
        if len(wrapped) != 1:
            raise ValueError("encapsulated content is not one value")
        content = wrapped[0]
    certificates: tuple[bytes, ...] = ()
    signers: Tlv | None = None
    for field in fields[3:]:
        if field.cls == _CONTEXT and field.tag == 0:
            # CertificateChoices: plain certificates are SEQUENCEs; the tagged alternatives name nobody.
            certificates = tuple(
                c.der for c in field.children() if c.cls == _UNIVERSAL and c.tag == _SEQUENCE
            )
        elif field.cls == _UNIVERSAL and field.tag == _SET:
            signers = field
    if signers is None:
        raise ValueError("SignedData has no signerInfos")
    return SignedFacts(oid(encap[0]), content, certificates, signers.children())


def signer_facts(value: Tlv) -> SignerFacts:
    fields = value.expect(_UNIVERSAL, _SEQUENCE, "SignerInfo").children()
    if len(fields) < 5:
        raise ValueError("SignerInfo is truncated")
    sid = fields[1]
    issuer: bytes | None = None
    serial: int | None = None
    key_id: bytes | None = None
    if sid.cls == _UNIVERSAL and sid.tag == _SEQUENCE:
        name_and_serial = sid.children()
        if len(name_and_serial) != 2:
            raise ValueError("SignerInfo issuerAndSerialNumber is malformed")
        issuer = name_and_serial[0].expect(_UNIVERSAL, _SEQUENCE, "issuer").der
        serial = integer(name_and_serial[1])
    elif sid.cls == _CONTEXT and sid.tag == 0:
        key_id = sid.body
    else:
        raise ValueError("SignerInfo sid is neither issuerAndSerialNumber nor subjectKeyIdentifier")
    signed, unsigned = Attributes(), Attributes()
    for field in fields[3:]:
        if field.cls == _CONTEXT and field.tag == 0:
            signed = _attributes(field)
        elif field.cls == _CONTEXT and field.tag == 1:
            unsigned = _attributes(field)
    return SignerFacts(issuer, serial, key_id, digest_name(fields[2]), signed, unsigned)


class Attributes:
    """A SignerInfo's attributes by dotted OID; each one's values are parsed when first asked for (a
    report reads two or three of the five to ten a signature carries)."""

    __slots__ = ("_sets", "_values")

    def __init__(self) -> None:
        self._sets: dict[str, list[Tlv]] = {}
        self._values: dict[str, list[Tlv]] = {}

    def add(self, dotted: str, values: Tlv) -> None:
        self._sets.setdefault(dotted, []).append(values.expect(_UNIVERSAL, _SET, "attribute values"))

    def __contains__(self, dotted: str) -> bool:
        return dotted in self._sets

    def get(self, dotted: str) -> list[Tlv]:
        """Every value of every attribute of that type, in order; [] when there is none."""
        found = self._values.get(dotted)
        if found is None:
            found = [v for s in self._sets.get(dotted, ()) for v in s.children()]
            self._values[dotted] = found
        return found


def _attributes(value: Tlv) -> Attributes:
    found = Attributes()
    for attribute in value.children():
        parts = attribute.expect(_UNIVERSAL, _SEQUENCE, "attribute").children()
        if len(parts) != 2:
            raise ValueError("attribute is malformed")
        found.add(oid(parts[0]), parts[1])
    return found


def token_facts(der: bytes | Tlv, now: datetime) -> TimestampInfo:
    """An RFC 3161 TimeStampToken's genTime and TSA certificate, for a report (nothing verified)."""
    facts = content_info(der)
    if facts.content_type != OID_TST_INFO or facts.content is None:
        raise ValueError("timestamp token does not encapsulate a TSTInfo")
    tst = facts.content.expect(_UNIVERSAL, _OCTET_STRING, "TSTInfo").value()
    fields = tst.expect(_UNIVERSAL, _SEQUENCE, "TSTInfo").children()
    if len(fields) < 5:
        raise ValueError("TSTInfo is truncated")
    gen_time = der_time(fields[4].expect(_UNIVERSAL, _GENERALIZED_TIME, "genTime"))
    if len(facts.signers) != 1:
        raise ValueError(f"timestamp token has {len(facts.signers)} signers, not one")
    cert = facts.signer().find(facts.load_certificates(dedupe=True))
    authority = summarize(cert, now) if cert is not None else None
    return TimestampInfo(kind="rfc3161", time=gen_time, authority=authority)


def countersignature_facts(
    der: bytes | Tlv, pool: Sequence[x509.Certificate], now: datetime, by_value: bool = True
) -> TimestampInfo:
    """A legacy PKCS#9 countersignature's signing time and signer, for a report (nothing verified)."""
    counter = signer_facts(der if isinstance(der, Tlv) else tlv(der))
    times = counter.signed.get("1.2.840.113549.1.9.5")
    stamped = der_time(times[0]) if times else None
    cert = counter.find(pool, by_value=by_value)
    authority = summarize(cert, now) if cert is not None else None
    return TimestampInfo(kind="authenticode", time=stamped, authority=authority)


@dataclass
class ReportSigner:
    """SignerData's facts for a report, read with the DER readers (see load_signed_data for --verify)."""

    signer_cert: x509.Certificate | None
    intermediates: list[x509.Certificate]
    digest_algorithm: str
    signature_algorithm: str  # signature_algorithm_name's spelling
    content_type: str
    content: Tlv | None
    signing_time: datetime | None
    timestamp: Timestamp | None


def report_signer(der: bytes, now: datetime, what: str = "signature block") -> ReportSigner:
    """The first signer of a DER ContentInfo(SignedData) with its certificates and timestamp, nothing
    verified. IntegrityError when malformed, as load_signed_data; a malformed timestamp is a failed
    TimestampInfo, as read_timestamp reports it."""
    try:
        facts = content_info(der, strict=True)
        if not facts.signers:
            raise IntegrityError(f"{what} has no signer")
        signer = facts.signer()
        pool = facts.load_certificates(skip_bad=False)
        cert = signer.find(pool)
        fields = facts.signers[0].children()
        algorithm = next(
            f for f in fields[3:] if f.cls == _UNIVERSAL and f.tag == _SEQUENCE
        )  # signatureAlgorithm: the first SEQUENCE after the digest algorithm and the signed attributes
        signature_algorithm = signature_algorithm_name(signer.digest_algorithm, algorithm.der)
        times = signer.signed.get("1.2.840.113549.1.9.5")
        try:
            signed_at = der_time(times[0]) if times else None
        except PARSE_ERRORS:
            signed_at = None
    except IntegrityError:
        raise
    except (*PARSE_ERRORS, StopIteration) as exc:
        raise IntegrityError(f"{what} is not valid PKCS#7: {exc}") from None
    return ReportSigner(
        signer_cert=cert,
        intermediates=[c for c in pool if c != cert],
        digest_algorithm=signer.digest_algorithm,
        signature_algorithm=signature_algorithm,
        content_type=facts.content_type,
        content=facts.content,
        signing_time=signed_at,
        timestamp=_report_timestamp(signer, pool, now),
    )


def signature_algorithm_name(digest_algorithm: str, algorithm_der: bytes) -> str:
    """ "sha256withrsassa_pkcs1v15" for a SignerInfo's digest algorithm and signatureAlgorithm (the digest
    alone when the scheme is unknown), the same for a report and for --verify."""
    scheme = _signature_scheme(algorithm_der)
    return f"{digest_algorithm}with{scheme}" if scheme is not None else digest_algorithm


_SCHEMES: dict[bytes, str | None] = {}


def _signature_scheme(der: bytes) -> str | None:
    """asn1crypto's name for a signatureAlgorithm's scheme (None when it has none), remembered per
    AlgorithmIdentifier encoding: a few recur in every signature, and building the object for each one
    showed in the cost of a JAR report."""
    if der in _SCHEMES:
        return _SCHEMES[der]
    scheme: str | None
    try:
        scheme = signature_scheme(algos.SignedDigestAlgorithm.load(der))
    except PARSE_ERRORS:
        scheme = None
    if len(_SCHEMES) < 4096:  # hostile input must not grow this
        _SCHEMES[der] = scheme
    return scheme


def _report_timestamp(
    signer: SignerFacts, pool: Sequence[x509.Certificate], now: datetime
) -> Timestamp | None:
    for oid_, kind in (
        (OID_TIMESTAMP_TOKEN, "rfc3161"),
        (OID_MS_RFC3161, "rfc3161"),
        (OID_COUNTERSIGNATURE, "authenticode"),
    ):
        values = signer.unsigned.get(oid_)
        if not values:
            continue
        try:
            if kind == "rfc3161":
                return Timestamp(token_facts(values[0], now))
            return Timestamp(countersignature_facts(values[0], pool, now))
        except PARSE_ERRORS as exc:
            return Timestamp(
                TimestampInfo(kind=kind, status=Outcome.FAILED, detail=f"malformed timestamp: {exc}")
            )
    return None
