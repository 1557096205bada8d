"""RFC 3161 time-stamp tokens: requests, responses, and verification against TSA roots the user supplied.

Pure: bytes, certificates and a clock in; records and named checks out. ASN.1 is asn1crypto's (its `tsp` and
`cms` modules are the field's parsers), signatures are checked with cryptography, and the TSA's certificate
path goes through the shared RFC 5280 validator (`trust.chain.verify_chain` with the timeStamping EKU).

rfc3161-client was considered and is used by the tests as an independent cross-check, but not here: it parses
only whole TimeStampResp messages (Notary and file signatures carry bare tokens), verifies through OpenSSL's
PKCS#7 code with every supplied certificate in one trust store (no separate intermediates, no RSA-PSS), and
reports one exception rather than which property failed.

A token says "these bytes existed at genTime" only when every check holds:
  timestamp-imprint   the TSTInfo's messageImprint is the hash of the data
  timestamp-signature the CMS SignerInfo signature over the signed attributes verifies under the signer's
                      key, the contentType attribute is id-ct-TSTInfo and messageDigest is the hash of the
                      encapsulated TSTInfo
  timestamp-signer    the signer certificate is the one the ESS signingCertificate(V2) attribute names
                      (hash and issuer/serial), and the TSTInfo's tsa name, when present, is its subject
  timestamp-chain     that certificate chains to the supplied roots, valid at genTime, with the timeStamping
                      EKU in a critical extension (RFC 3161 §2.3)
  timestamp-nonce     the nonce the request carried, when the caller knows it
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from sigscope.errors import IntegrityError, SigscopeError
from sigscope.model import CertificateInfo, Check, Outcome, Signature
from sigscope.trust import certs
from sigscope.trust.chain import TIME_STAMPING, verify_chain

CHECK_IMPRINT = "timestamp-imprint"
CHECK_SIGNATURE = "timestamp-signature"
CHECK_SIGNER = "timestamp-signer"
CHECK_CHAIN = "timestamp-chain"
CHECK_NONCE = "timestamp-nonce"

# Imprint and CMS digests we accept. SHA-1 and MD5 are refused: a collision there forges the binding.
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha3_256": hashes.SHA3_256,
    "sha3_384": hashes.SHA3_384,
    "sha3_512": hashes.SHA3_512,
}
_GRANTED = ("granted", "granted_with_mods")


class _TimeStampResp(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """asn1crypto's TimeStampResp with the token OPTIONAL, as RFC 3161 §2.4.2 has it: rejections have none."""

    _fields: ClassVar[list[tuple[str, Any, dict[str, Any]] | tuple[str, Any]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class TimestampError(IntegrityError):
    """Bytes that are not a well-formed RFC 3161 response or token."""


class TimestampRejected(SigscopeError):
    """The TSA answered with a status other than granted / grantedWithMods."""

    def __init__(self, status: str, text: str = "", failure: str = "") -> None:
        detail = f"TSA rejected the request: {status}"
        if failure:
            detail += f" ({failure})"
        if text:
            detail += f": {text}"
        super().__init__(detail)
        self.status = status
        self.failure = failure


def _hash(name: str, data: bytes) -> bytes:
    algorithm = _HASHES.get(name)
    if algorithm is None:
        raise TimestampError(f"unsupported or weak hash algorithm {name}")
    digest = hashes.Hash(algorithm())
    digest.update(data)
    return digest.finalize()


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class TimestampRequest:
    der: bytes
    hash_algorithm: str
    digest: bytes
    nonce: int | None
    cert_req: bool


def build_request(
    data: bytes,
    *,
    hash_algorithm: str = "sha256",
    nonce: int | None = None,
    with_nonce: bool = True,
    cert_req: bool = True,
    policy: str | None = None,
) -> TimestampRequest:
    """A DER TimeStampReq for `data` (a random 64-bit nonce unless one is given or `with_nonce` is False)."""
    digest = _hash(hash_algorithm, data)
    if not with_nonce:
        nonce = None
    elif nonce is None:
        nonce = secrets.randbits(64) | 1
    fields: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": hash_algorithm}, "hashed_message": digest},
        "cert_req": cert_req,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    if policy is not None:
        fields["req_policy"] = policy
    return TimestampRequest(
        der=tsp.TimeStampReq(fields).dump(),
        hash_algorithm=hash_algorithm,
        digest=digest,
        nonce=nonce,
        cert_req=cert_req,
    )


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class TimestampToken:
    """A parsed TimeStampToken: the TSTInfo's facts and the CMS material to check them."""

    der: bytes  # the ContentInfo
    gen_time: datetime
    hash_algorithm: str
    imprint: bytes
    serial: int
    policy: str
    nonce: int | None
    accuracy: timedelta | None
    ordering: bool
    tsa_name: str | None  # the TSTInfo's tsa GeneralName, as text
    signer: x509.Certificate | None  # the carried certificate the SignerInfo names, if carried
    certificates: tuple[x509.Certificate, ...]  # every certificate the token carries
    response_der: bytes | None = None  # the TimeStampResp it came in, when it came in one
    _signed_data: cms.SignedData = field(repr=False, compare=False, default=None)
    _tst_der: bytes = field(repr=False, compare=False, default=b"")

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")

    @property
    def signer_info(self) -> cms.SignerInfo:
        info: cms.SignerInfo = self._signed_data["signer_infos"][0]
        return info

    def claims(self) -> dict[str, Any]:
        """Facts for reports (what the token says, not whether it holds)."""
        out: dict[str, Any] = {
            "time": self.gen_time.isoformat(),
            "serial": self.serial_hex,
            "policy": self.policy,
            "hashAlgorithm": self.hash_algorithm,
        }
        if self.accuracy is not None:
            out["accuracy"] = self.accuracy.total_seconds()
        if self.signer is not None:
            out["tsa"] = self.signer.subject.rfc4514_string()
        elif self.tsa_name:
            out["tsa"] = self.tsa_name
        return out


def parse_response(der: bytes) -> TimestampToken:
    """The token of a granted TimeStampResp: TimestampRejected for another status, TimestampError if
    malformed."""
    try:
        response = _TimeStampResp.load(bytes(der), strict=True)
        status = response["status"]
        state = status["status"].native
        text = status["status_string"].native
        failure = status["fail_info"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError(f"not a DER TimeStampResp: {exc}") from None
    if state not in _GRANTED:
        words = "; ".join(str(t) for t in text) if text else ""
        flags = ", ".join(sorted(str(f) for f in failure)) if failure else ""
        raise TimestampRejected(str(state), words, flags)
    token = response["time_stamp_token"]
    if not isinstance(token, cms.ContentInfo) or token.contents is None:
        raise TimestampError("granted TimeStampResp carries no timeStampToken")
    return dataclasses.replace(parse_token(token.dump()), response_der=bytes(der))


def parse_token(der: bytes) -> TimestampToken:
    """A TimeStampToken (CMS ContentInfo → SignedData → TSTInfo); TimestampError if malformed."""
    try:
        return _parse_token(bytes(der))
    except TimestampError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise TimestampError(f"malformed timestamp token: {exc}") from None


def _parse_token(der: bytes) -> TimestampToken:
    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].native != "signed_data":
        raise TimestampError(f"timestamp token is {info['content_type'].native}, not SignedData")
    signed: cms.SignedData = info["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise TimestampError(f"timestamp token encapsulates {encap['content_type'].dotted}, not a TSTInfo")
    content = encap["content"]
    if not isinstance(content, core.ParsableOctetString) or content.contents is None:
        raise TimestampError("timestamp token has no encapsulated TSTInfo")
    tst_der = bytes(content.contents)
    tst = tsp.TSTInfo.load(tst_der, strict=True)
    if len(signed["signer_infos"]) != 1:
        raise TimestampError(f"timestamp token has {len(signed['signer_infos'])} signers, not one")
    version = tst["version"].native
    if version != "v1":
        raise TimestampError(f"TSTInfo version {version} is not v1")

    imprint = tst["message_imprint"]
    gen_time = tst["gen_time"].native
    if not isinstance(gen_time, datetime):
        raise TimestampError("TSTInfo has no genTime")
    carried = _certificates(signed)
    token = TimestampToken(
        der=der,
        gen_time=gen_time,
        hash_algorithm=str(imprint["hash_algorithm"]["algorithm"].native),
        imprint=bytes(imprint["hashed_message"].native),
        serial=int(tst["serial_number"].native),
        policy=str(tst["policy"].dotted),
        nonce=tst["nonce"].native,
        accuracy=_accuracy(tst["accuracy"]),
        ordering=bool(tst["ordering"].native),
        tsa_name=_general_name_text(tst["tsa"]),
        signer=None,
        certificates=tuple(cert for cert, _ in carried),
        _signed_data=signed,
        _tst_der=tst_der,
    )
    return dataclasses.replace(token, signer=_find_signer(token.signer_info, carried))


def _certificates(signed: cms.SignedData) -> list[tuple[x509.Certificate, asn1_x509.Certificate]]:
    out = []
    seen: set[bytes] = set()
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue  # attribute certificates and the like never identify a TSA
        der = choice.chosen.dump()
        if der in seen:  # openssl ts adds the signer again when its certs= file holds it too
            continue
        seen.add(der)
        out.append((x509.load_der_x509_certificate(der), choice.chosen))
    return out


def _accuracy(value: tsp.Accuracy) -> timedelta | None:
    if value.contents is None or not isinstance(value.native, dict):
        return None
    native = value.native
    seconds = Decimal(native.get("seconds") or 0)
    seconds += Decimal(native.get("millis") or 0) / 1000 + Decimal(native.get("micros") or 0) / 1_000_000
    return timedelta(seconds=float(seconds))


def _general_name_text(name: asn1_x509.GeneralName) -> str | None:
    if isinstance(name, core.Void) or name.contents is None:
        return None
    if name.name == "directory_name":
        return _to_x509_name(name.chosen).rfc4514_string()
    return str(name.native)


def _to_x509_name(name: asn1_x509.Name) -> x509.Name:
    # Spelled as cryptography spells DNs, like every other name sigscope reports.
    rdns = []
    for rdn in name.chosen:
        attributes = []
        for attribute in rdn:
            oid = x509.ObjectIdentifier(attribute["type"].dotted)
            value = attribute["value"].native
            attributes.append(x509.NameAttribute(oid, str(value)))
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


def _find_signer(
    signer_info: cms.SignerInfo, carried: Sequence[tuple[x509.Certificate, asn1_x509.Certificate]]
) -> x509.Certificate | None:
    sid = signer_info["sid"]
    for cert, raw in carried:
        if sid.name == "issuer_and_serial_number":
            # The serial first: the name comparison is the costly part (see _same_name).
            if raw.serial_number == sid.chosen["serial_number"].native and _same_name(
                raw.issuer, sid.chosen["issuer"]
            ):
                return cert
        elif sid.name == "subject_key_identifier":
            if raw.key_identifier is not None and raw.key_identifier == sid.chosen.native:
                return cert
    return None


# ---------------------------------------------------------------- verification


@dataclass(frozen=True)
class TimestampVerification:
    """The outcome of verifying one token over some data: every check, and what a report needs."""

    token: TimestampToken
    checks: tuple[Check, ...]
    signer: x509.Certificate | None
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def ok(self) -> bool:
        """Every check passed, the chain to supplied roots included."""
        return bool(self.checks) and all(c.outcome is Outcome.PASSED for c in self.checks)

    @property
    def consistent(self) -> bool:
        """Nothing failed (the chain check may have been skipped for want of roots)."""
        return not any(c.outcome is Outcome.FAILED for c in self.checks)

    @property
    def time(self) -> datetime:
        return self.token.gen_time

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.outcome is Outcome.FAILED]

    @property
    def detail(self) -> str:
        failed = self.failures
        if failed:
            return "; ".join(f"{c.name}: {c.detail}" for c in failed)
        skipped = [c for c in self.checks if c.outcome is Outcome.SKIPPED]
        if skipped:
            return "; ".join(f"{c.name}: {c.detail}" for c in skipped)
        return f"time-stamped {self.time.isoformat()} by {self.tsa_name}"

    @property
    def tsa_name(self) -> str:
        if self.signer is not None:
            return self.signer.subject.rfc4514_string()
        return self.token.tsa_name or "an unknown TSA"

    def tsa(self, now: datetime) -> CertificateInfo | None:
        return certs.summarize(self.signer, now) if self.signer is not None else None


def verify_timestamp(
    token: TimestampToken,
    data: bytes | None,
    roots: Sequence[x509.Certificate] | None,
    *,
    intermediates: Sequence[x509.Certificate] = (),
    nonce: int | None = None,
    digest: bytes | None = None,
) -> TimestampVerification:
    """Check `token` over `data` (or its precomputed `digest` in the token's hash) against TSA `roots`.

    `intermediates` may also hold the TSA's own certificate when the token does not carry it (cosign's
    --timestamp-certificate-chain may). `roots=None` checks everything but the chain (reported skipped), for a
    scan that has no TSA trust material: such a result is at best `consistent`, never `ok`.
    """
    checks = [_imprint_check(token, data, digest)]
    signer = token.signer or _find_signer(
        token.signer_info, [(c, asn1_x509.Certificate.load(_der(c))) for c in intermediates]
    )
    if signer is None:
        checks.append(Check.failed(CHECK_SIGNATURE, "the token does not carry the signer's certificate"))
        checks.append(Check.failed(CHECK_SIGNER, "no certificate matches the SignerInfo"))
        checks.append(Check.skipped(CHECK_CHAIN, "no signer certificate"))
    else:
        checks.append(_signature_check(token, signer))
        checks.append(_signer_check(token, signer))
        chain: tuple[x509.Certificate, ...] = ()
        chain_check, chain = _chain_check(token, signer, roots, intermediates)
        checks.append(chain_check)
        if nonce is not None:
            checks.append(_nonce_check(token, nonce))
        return TimestampVerification(token, tuple(checks), signer, chain)
    if nonce is not None:
        checks.append(_nonce_check(token, nonce))
    return TimestampVerification(token, tuple(checks), None)


def _der(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def _imprint_check(token: TimestampToken, data: bytes | None, digest: bytes | None) -> Check:
    if token.hash_algorithm not in _HASHES:
        return Check.failed(CHECK_IMPRINT, f"imprint uses {token.hash_algorithm}, which is not accepted")
    if digest is None:
        if data is None:
            return Check.failed(CHECK_IMPRINT, "no data to compare the imprint with")
        digest = _hash(token.hash_algorithm, data)
    if len(token.imprint) != len(digest) or not secrets.compare_digest(token.imprint, digest):
        return Check.failed(CHECK_IMPRINT, f"the token's {token.hash_algorithm} imprint is not of this data")
    return Check.passed(CHECK_IMPRINT, f"{token.hash_algorithm} imprint matches")


def _attribute(signed_attrs: cms.CMSAttributes, name: str) -> list[Any] | None:
    found = [attr for attr in signed_attrs if attr["type"].native == name]
    if not found:
        return None
    if len(found) > 1:
        raise TimestampError(f"signed attribute {name} appears {len(found)} times")
    return list(found[0]["values"])


def _signature_check(token: TimestampToken, signer: x509.Certificate) -> Check:
    info = token.signer_info
    try:
        digest_name = str(info["digest_algorithm"]["algorithm"].native)
        if digest_name not in _HASHES:
            return Check.failed(CHECK_SIGNATURE, f"CMS digest algorithm {digest_name} is not accepted")
        attrs = info["signed_attrs"]
        if attrs.contents is None or not len(attrs):
            return Check.failed(CHECK_SIGNATURE, "SignerInfo has no signed attributes")
        content_type = _attribute(attrs, "content_type")
        if not content_type or len(content_type) != 1 or content_type[0].native != "tst_info":
            return Check.failed(CHECK_SIGNATURE, "contentType attribute is not id-ct-TSTInfo")
        message_digest = _attribute(attrs, "message_digest")
        if not message_digest or len(message_digest) != 1:
            return Check.failed(CHECK_SIGNATURE, "no single messageDigest attribute")
        expected = _hash(digest_name, token._tst_der)
        if not secrets.compare_digest(bytes(message_digest[0].native), expected):
            return Check.failed(CHECK_SIGNATURE, "messageDigest does not match the encapsulated TSTInfo")
        # The signature covers the DER of the attributes as a SET (RFC 5652 §5.4), not the [0] tag.
        signed_bytes = b"\x31" + attrs.dump()[1:]
        problem = _verify_signature(
            signer, info["signature_algorithm"], digest_name, info["signature"].native, signed_bytes
        )
    except TimestampError as exc:
        return Check.failed(CHECK_SIGNATURE, str(exc))
    except (ValueError, TypeError, KeyError) as exc:
        return Check.failed(CHECK_SIGNATURE, f"malformed SignerInfo: {exc}")
    if problem:
        return Check.failed(CHECK_SIGNATURE, problem)
    return Check.passed(CHECK_SIGNATURE, "CMS signature over the TSTInfo verifies with the TSA certificate")


def _verify_signature(
    signer: x509.Certificate,
    algorithm: algos.SignedDigestAlgorithm,
    digest_name: str,
    signature: bytes,
    data: bytes,
) -> str | None:
    """None when `signature` verifies, else why not."""
    try:
        key = signer.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        return f"TSA public key unreadable: {exc}"
    kind = algorithm.signature_algo
    try:
        if kind == "rsassa_pkcs1v15":
            if not isinstance(key, rsa.RSAPublicKey):
                return "RSA signature but the TSA key is not RSA"
            hash_name = _signature_hash(algorithm, digest_name)
            key.verify(signature, data, padding.PKCS1v15(), _HASHES[hash_name]())
        elif kind == "rsassa_pss":
            if not isinstance(key, rsa.RSAPublicKey):
                return "RSA-PSS signature but the TSA key is not RSA"
            params = algorithm["parameters"]
            hash_name = str(params["hash_algorithm"]["algorithm"].native)
            mgf = params["mask_gen_algorithm"]
            if mgf["algorithm"].native != "mgf1":
                return f"RSA-PSS mask generation {mgf['algorithm'].native} is not supported"
            mgf_hash = str(mgf["parameters"]["algorithm"].native)
            if hash_name not in _HASHES or mgf_hash not in _HASHES:
                return f"RSA-PSS with {hash_name}/{mgf_hash} is not accepted"
            if params["trailer_field"].native != "trailer_field_bc":
                return "RSA-PSS trailer field is not 0xbc"
            pss = padding.PSS(
                mgf=padding.MGF1(_HASHES[mgf_hash]()), salt_length=int(params["salt_length"].native)
            )
            key.verify(signature, data, pss, _HASHES[hash_name]())
        elif kind == "ecdsa":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return "ECDSA signature but the TSA key is not EC"
            hash_name = _signature_hash(algorithm, digest_name)
            key.verify(signature, data, ec.ECDSA(_HASHES[hash_name]()))
        elif kind == "ed25519":
            if not isinstance(key, ed25519.Ed25519PublicKey):
                return "Ed25519 signature but the TSA key is not Ed25519"
            key.verify(signature, data)
        else:
            return f"signature algorithm {algorithm['algorithm'].native} is not supported"
    except InvalidSignature:
        return "CMS signature does not verify with the TSA certificate's key"
    except KeyError as exc:
        return f"signature hash {exc} is not accepted"
    return None


def _signature_hash(algorithm: algos.SignedDigestAlgorithm, digest_name: str) -> str:
    # rsaEncryption / plain ecPublicKey OIDs name no hash: the SignerInfo's digestAlgorithm decides.
    try:
        name = str(algorithm.hash_algo)
    except ValueError:
        name = digest_name
    if name not in _HASHES:
        raise TimestampError(f"signature hash {name} is not accepted")
    return name


def _signer_check(token: TimestampToken, signer: x509.Certificate) -> Check:
    attrs = token.signer_info["signed_attrs"]
    der = _der(signer)
    raw = asn1_x509.Certificate.load(der)
    try:
        v2 = _attribute(attrs, "signing_certificate_v2")
        v1 = _attribute(attrs, "signing_certificate")
    except TimestampError as exc:
        return Check.failed(CHECK_SIGNER, str(exc))
    if v2:
        ids = v2[0]["certs"]
        if not len(ids):
            return Check.failed(CHECK_SIGNER, "signingCertificateV2 lists no certificate")
        first = ids[0]
        hash_name = str(first["hash_algorithm"]["algorithm"].native)
        if hash_name not in _HASHES:
            return Check.failed(CHECK_SIGNER, f"ESSCertIDv2 uses {hash_name}, which is not accepted")
        expected = _hash(hash_name, der)
        which = "ESSCertIDv2"
    elif v1:
        ids = v1[0]["certs"]
        if not len(ids):
            return Check.failed(CHECK_SIGNER, "signingCertificate lists no certificate")
        first = ids[0]
        # ESSCertID is SHA-1 by definition; it binds the certificate the signature already verified under,
        # so a collision buys nothing an attacker does not already have.
        expected = hashlib.sha1(der, usedforsecurity=False).digest()
        which = "ESSCertID"
    else:
        return Check.failed(CHECK_SIGNER, "no ESS signingCertificate(V2) attribute binds the TSA certificate")
    if bytes(first["cert_hash"].native) != expected:
        return Check.failed(CHECK_SIGNER, f"{which} hash does not match the TSA certificate")
    issuer_serial = first["issuer_serial"]
    if issuer_serial.contents is not None and issuer_serial.native is not None:
        if issuer_serial["serial_number"].native != raw.serial_number:
            return Check.failed(CHECK_SIGNER, f"{which} serial does not match the TSA certificate")
        names = [n.chosen for n in issuer_serial["issuer"] if n.name == "directory_name"]
        if names and not any(_same_name(n, raw.issuer) for n in names):
            return Check.failed(CHECK_SIGNER, f"{which} issuer does not match the TSA certificate")
    tsa = _tsa_field(token)
    if tsa is not None and tsa.name == "directory_name" and not _same_name(tsa.chosen, raw.subject):
        return Check.failed(CHECK_SIGNER, f"TSTInfo names TSA {token.tsa_name}, not the signing certificate")
    return Check.passed(CHECK_SIGNER, f"{which} names {signer.subject.rfc4514_string()}")


def _same_name(a: asn1_x509.Name, b: asn1_x509.Name) -> bool:
    """asn1crypto's name equality (RFC 5280 §7.1 string preparation), skipped when the DER is identical:
    the preparation costs milliseconds per name and cannot tell identical bytes apart."""
    return bool(a.dump() == b.dump() or a == b)


def _tsa_field(token: TimestampToken) -> asn1_x509.GeneralName | None:
    tst = tsp.TSTInfo.load(token._tst_der)
    name: asn1_x509.GeneralName = tst["tsa"]
    return None if isinstance(name, core.Void) or name.contents is None else name


def _chain_check(
    token: TimestampToken,
    signer: x509.Certificate,
    roots: Sequence[x509.Certificate] | None,
    intermediates: Sequence[x509.Certificate],
) -> tuple[Check, tuple[x509.Certificate, ...]]:
    if roots is None:
        return Check.skipped(CHECK_CHAIN, "no TSA roots supplied"), ()
    if not roots:
        return Check.failed(CHECK_CHAIN, "no TSA roots supplied"), ()
    try:
        eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return Check.failed(
            CHECK_CHAIN, "TSA certificate has no extendedKeyUsage (timeStamping required)"
        ), ()
    if TIME_STAMPING not in eku.value:
        return Check.failed(CHECK_CHAIN, "TSA certificate's extendedKeyUsage lacks timeStamping"), ()
    if not eku.critical:
        return Check.failed(
            CHECK_CHAIN, "TSA certificate's timeStamping extendedKeyUsage is not critical"
        ), ()
    # Self-signed certificates are anchors, and anchors come only from the user; offered as intermediates
    # they just send the path builder in circles.
    others = [c for c in (*token.certificates, *intermediates) if c != signer and not certs.is_self_signed(c)]
    result = verify_chain(signer, others, roots, token.gen_time, eku=(TIME_STAMPING,))
    if not result.ok:
        return Check.failed(CHECK_CHAIN, f"TSA certificate: {result.detail}"), ()
    root = result.chain[-1].subject.rfc4514_string()
    return Check.passed(
        CHECK_CHAIN, f"TSA certificate chains to {root} at {token.gen_time.isoformat()}"
    ), result.chain


def _nonce_check(token: TimestampToken, nonce: int) -> Check:
    if token.nonce is None:
        return Check.failed(CHECK_NONCE, "the token carries no nonce, the request had one")
    if token.nonce != nonce:
        return Check.failed(CHECK_NONCE, "the token's nonce is not the request's")
    return Check.passed(CHECK_NONCE, "nonce matches the request")


# ---------------------------------------------------------------- trust material


def split_trust_chain(
    chain: Sequence[x509.Certificate],
) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """(roots, others) of a --timestamp-certificate-chain file as cosign reads one: the self-signed
    certificates are the roots (the last one when none is), the rest are intermediates or the TSA leaf."""
    roots = [c for c in chain if certs.is_self_signed(c)]
    if not roots and chain:
        roots = [chain[-1]]
    return roots, [c for c in chain if c not in roots]


# ---------------------------------------------------------------- signatures that carry a timestamp

TIMESTAMP_CHECK = "timestamp"
RESPONSE_EVIDENCE = "timestamp-response"  # DER TimeStampResp (cosign) as carried
DATA_EVIDENCE = "timestamp-data"  # the bytes the imprint must be of
TIME_SOURCE_PREFIX = "RFC 3161 timestamp"


@dataclass(frozen=True)
class TimestampTrust:
    """TSA trust material (cosign's --timestamp-certificate-chain): roots, and intermediates or TSA leaves."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_chain(cls, chain: Sequence[x509.Certificate]) -> TimestampTrust:
        roots, others = split_trust_chain(chain)
        return cls(tuple(roots), tuple(others))


def record_timestamp(sig: Signature, response: bytes, data: bytes | None) -> None:
    """What a scan without TSA roots can say about a carried TimeStampResp: its claims, and a `timestamp`
    check that fails when the token is malformed, not over `data`, or not signed by its own certificate,
    and is otherwise skipped (self-consistent, TSA not trusted). The time never becomes `signing_time`."""
    sig.evidence[RESPONSE_EVIDENCE] = response
    try:
        token = parse_response(response)
    except (TimestampError, TimestampRejected) as exc:
        sig.checks.append(Check.failed(TIMESTAMP_CHECK, str(exc)))
        return
    claims = token.claims()
    claims["verified"] = False
    sig.claims["timestamp"] = claims
    if data is None:
        sig.checks.append(Check.failed(TIMESTAMP_CHECK, "no signature bytes for the timestamp to cover"))
        return
    sig.evidence[DATA_EVIDENCE] = data
    result = verify_timestamp(token, data, None)
    if not result.consistent:
        sig.checks.append(Check.failed(TIMESTAMP_CHECK, result.detail))
        return
    sig.checks.append(
        Check.skipped(
            TIMESTAMP_CHECK,
            f"claims {token.gen_time.isoformat()} by {result.tsa_name}; the TSA is not checked without "
            "--timestamp-certificate-chain",
        )
    )


def apply_timestamp_trust(sig: Signature, trust: TimestampTrust | None, now: datetime) -> Signature:
    """Verify a carried timestamp against TSA roots. Only a token that holds sets `signing_time` and
    `timestamped`; one that does not is a failed `timestamp` check, which makes the signature invalid."""
    response = sig.evidence.get(RESPONSE_EVIDENCE)
    if trust is None or response is None:
        return sig
    existing = next((c for c in sig.checks if c.name == TIMESTAMP_CHECK), None)
    if existing is not None and existing.outcome is Outcome.FAILED:
        return sig  # malformed or inconsistent already: no roots can mend it
    data = sig.evidence.get(DATA_EVIDENCE)
    try:
        token = parse_response(response)
    except (TimestampError, TimestampRejected) as exc:  # record_timestamp saw it parse; kept for safety
        check = Check.failed(TIMESTAMP_CHECK, str(exc))
        result = None
    else:
        result = verify_timestamp(token, data, trust.roots, intermediates=trust.intermediates)
        check = (
            Check.passed(TIMESTAMP_CHECK, result.detail)
            if result.ok
            else Check.failed(TIMESTAMP_CHECK, result.detail)
        )
    sig.checks = [c for c in sig.checks if c.name != TIMESTAMP_CHECK]
    sig.checks.append(check)
    if result is not None and result.ok:
        sig.signing_time = result.time
        sig.timestamped = True
        sig.claims["signingTimeSource"] = f"{TIME_SOURCE_PREFIX} by {result.tsa_name}"
        claims = dict(sig.claims.get("timestamp") or result.token.claims())
        claims["verified"] = True
        tsa = result.tsa(now)
        if tsa is not None:
            claims["tsaCertificate"] = tsa.to_json()
        sig.claims["timestamp"] = claims
    return sig.settle()
