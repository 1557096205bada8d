"""Authenticode in PE images (EXE, DLL, SYS, EFI), MSI packages and cabinets.

signify parses the PKCS#7 structures (SpcIndirectDataContent, nested signatures, legacy PKCS#9 and
RFC 3161 countersignatures) and computes the PE image hash; msi.py and cab.py compute the other two
digests. Every cryptographic check is ours, on cryptography, and named: `digest` (the file's content
against the signed digest, and the signed attributes' messageDigest against that content), `signature`
(the signer's key over the signed attributes), `trusted-chain` (trust/chain.py to the user's roots with
codeSigning, at the timestamp's time when a valid timestamp exists, else now) and `timestamp` (the
countersignature or token: its digest over our signature value, its own signature, its TSA chain with
timeStamping). A broken or untrusted timestamp never makes a signature invalid: the `timestamp` check
is skipped with the reason, the TimestampInfo carries the failure and the signature gets a warning.

Page hashes (SpcPeImageData page hash tables) are reported and not checked, as in osslsigncode's
default; the image hash already covers every byte they cover.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from sigscope.errors import IntegrityError, SigscopeError
from sigscope.files import cab, msi, pkcs7
from sigscope.files._signify import (
    AuthenticodeSignature,  # noqa: F401  # kept importable: the signify workaround's test reaches it here
    IndirectData,
    PeImageData,
    SignedPEFile,
    SignifyError,
    SpcAttributeType,
    SpcPeImageData,
    SpcSpOpusInfo,
)
from sigscope.files.base import HEAD_SIZE, FileHandler, FileSignature, FileTrust, TimestampInfo
from sigscope.model import Check, Outcome
from sigscope.trust import certs, timestamp
from sigscope.trust.chain import CODE_SIGNING, TIME_STAMPING

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
_LEGACY_HASHES = {"sha1", "md5"}

Fingerprint = Callable[[str], bytes]


class AuthenticodeError(IntegrityError):
    """A file that claims an Authenticode signature but whose structure is corrupt."""


# ---------------------------------------------------------------- file types


def _read_head(fp: BinaryIO, size: int) -> bytes:
    fp.seek(0)
    return fp.read(size)


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise SigscopeError(f"cannot read {path}: {exc.strerror or exc}") from None


def _guarded(inspect: Callable[..., Sequence[FileSignature]]) -> Callable[..., Sequence[FileSignature]]:
    """The handler boundary: whatever a parser raises on hostile bytes becomes one IntegrityError."""

    def wrapper(self: Any, path: Path, verify: bool, trust: FileTrust) -> Sequence[FileSignature]:
        try:
            return inspect(self, path, verify, trust)
        except SigscopeError:
            raise
        except RecursionError:
            raise AuthenticodeError(f"corrupt {self.name.upper()} file: structure nests too deeply") from None
        except Exception as exc:  # parsers (signify, asn1crypto, cryptography) raise many types on bad input
            raise AuthenticodeError(
                f"corrupt {self.name.upper()} file: {type(exc).__name__}: {_short(exc)}"
            ) from None

    wrapper.__doc__ = inspect.__doc__
    return wrapper


class PEHandler:
    """PE/COFF images: the signature is the PKCS#7 in the certificate table (type PKCS_SIGNED_DATA)."""

    name = "pe"
    first_bytes = b"M"  # registry.Classifier: "MZ"

    def sniff(self, head: bytes, path: Path) -> bool:
        if len(head) < 0x40 or head[:2] != b"MZ":
            return False
        (pe,) = struct.unpack_from("<I", head, 0x3C)
        if pe + 26 > len(head):
            # The PE header lies beyond what was read: only a full head can mean "look further".
            return len(head) >= HEAD_SIZE
        if head[pe : pe + 4] != b"PE\0\0":
            return False
        optional = pe + 24
        (magic,) = struct.unpack_from("<H", head, optional)
        if magic == 0x10B:
            rva_count_at, cert_dir = optional + 92, optional + 128
        elif magic == 0x20B:
            rva_count_at, cert_dir = optional + 108, optional + 144
        else:
            return False
        if cert_dir + 8 > len(head):
            return len(head) >= HEAD_SIZE
        (rva_count,) = struct.unpack_from("<I", head, rva_count_at)
        if rva_count < 5:
            return False
        address, size = struct.unpack_from("<II", head, cert_dir)
        return bool(address) and bool(size)

    @_guarded
    def inspect(self, path: Path, verify: bool, trust: FileTrust) -> Sequence[FileSignature]:
        with _open(path) as fp:
            try:
                pe = SignedPEFile(fp)
                omit = pe.get_authenticode_omit_sections()
                if omit is None:
                    raise AuthenticodeError("not a valid PE image (headers are malformed or truncated)")
                if "certtable" not in omit:
                    if "datadir_certtable" in omit and _cert_dir_nonzero(pe, omit):
                        raise AuthenticodeError(
                            "the certificate table entry points outside the file (truncated or corrupt)"
                        )
                    return []
                blobs: list[bytes] = []
                warnings: list[str] = []
                for entry in pe._parse_cert_table():
                    if entry["revision"] != 0x200 or entry["type"] != 2:
                        continue
                    blob = entry["certificate"]
                    blobs.append(blob)
                    slack = _trailing_bytes(blob)
                    if slack.strip(b"\0"):
                        warnings.append(
                            f"{len(slack)} bytes follow the signature inside the certificate table; "
                            "they are not covered by the signature"
                        )
            except SigscopeError:
                raise
            except (SignifyError, struct.error, ValueError, OSError) as exc:
                raise AuthenticodeError(f"corrupt PE image: {exc}") from None
            if not blobs:
                return []

            def fingerprint(algorithm: str) -> bytes:
                try:
                    return pe.get_fingerprint(getattr(hashlib, algorithm))
                except (SignifyError, struct.error, ValueError, OSError, KeyError) as exc:
                    raise AuthenticodeError(f"cannot hash the PE image: {exc}") from None

            out: list[FileSignature] = []
            for blob in blobs:
                out.extend(_inspect_blob(blob, fingerprint, verify, trust, start=len(out) + 1))
            for signature in out:
                signature.warnings[:0] = warnings
            return out


def _cert_dir_nonzero(pe: SignedPEFile, omit: dict[str, Any]) -> bool:
    start = omit["datadir_certtable"].start
    pe.file.seek(start)
    raw = pe.file.read(8)
    return len(raw) == 8 and any(struct.unpack("<II", raw))


def _trailing_bytes(blob: bytes) -> bytes:
    """Bytes after the DER SignedData inside one WIN_CERTIFICATE (padding, or smuggled data)."""
    if blob[:1] == b"\x30":
        # A definite-length SEQUENCE, as a signature is: asn1crypto would re-dump exactly these bytes.
        try:
            top = pkcs7.tlv(blob, strict=False)
        except ValueError:
            top = None
        if top is not None and top.plain:
            return blob[len(top.der) :]
    try:
        parsed = core.Asn1Value.load(blob, strict=False)
        return blob[len(parsed.dump()) :]
    except ValueError:
        return b""


class MSIHandler:
    """Windows Installer packages: the signature is the `\\x05DigitalSignature` stream."""

    name = "msi"
    first_bytes = msi.MAGIC[:1]

    def sniff(self, head: bytes, path: Path) -> bool:
        # Whether the compound file has a signature stream needs its directory: inspect decides.
        return head[:8] == msi.MAGIC

    @_guarded
    def inspect(self, path: Path, verify: bool, trust: FileTrust) -> Sequence[FileSignature]:
        with _open(path) as fp:
            try:
                cfb = msi.CompoundFile(fp)
                entry = cfb.find(msi.SIGNATURE_STREAM)
                if entry is None:
                    return []
                blob = cfb.read(entry)
                ex_entry = cfb.find(msi.SIGNATURE_EX_STREAM)
                ex_digest = cfb.read(ex_entry) if ex_entry is not None else None
            except SigscopeError:
                raise
            except (struct.error, ValueError, OSError, OverflowError, MemoryError) as exc:
                raise AuthenticodeError(f"corrupt compound file: {exc}") from None

            def fingerprint(algorithm: str) -> bytes:
                try:
                    if ex_digest is not None and msi.prehash(cfb, algorithm) != ex_digest:
                        raise AuthenticodeError(
                            "MsiDigitalSignatureEx does not match the package's metadata (tampered)"
                        )
                    return msi.fingerprint(cfb, algorithm)
                except SigscopeError:
                    raise
                except (struct.error, ValueError, OSError, OverflowError, MemoryError) as exc:
                    raise AuthenticodeError(f"cannot hash the compound file: {exc}") from None

            signatures = _inspect_blob(blob, fingerprint, verify, trust)
            if ex_digest is not None:
                for signature in signatures:
                    signature.details["msiDigitalSignatureEx"] = True
            return signatures


class CABHandler:
    """Cabinets: the signature is appended, located by the header reserve."""

    name = "cab"
    first_bytes = cab.MAGIC[:1]

    def sniff(self, head: bytes, path: Path) -> bool:
        if len(head) < 60 or head[:4] != cab.MAGIC:
            return False
        (flags,) = struct.unpack_from("<H", head, 30)
        marker, offset, size = struct.unpack_from("<III", head, 40)
        return bool(flags & 0x0004) and marker == 0x00100000 and offset != 0 and size != 0

    @_guarded
    def inspect(self, path: Path, verify: bool, trust: FileTrust) -> Sequence[FileSignature]:
        with _open(path) as fp:
            try:
                fp.seek(0, 2)
                size = fp.tell()
                location = cab.signature_location(_read_head(fp, 60), size)
                if location is None:
                    return []
                fp.seek(location.offset)
                blob = fp.read(location.size)
            except OSError as exc:
                raise AuthenticodeError(f"cannot read the cabinet: {exc}") from None

            def fingerprint(algorithm: str) -> bytes:
                try:
                    return cab.fingerprint(fp, location, algorithm)
                except (struct.error, ValueError, OSError) as exc:
                    raise AuthenticodeError(f"cannot hash the cabinet: {exc}") from None

            return _inspect_blob(blob, fingerprint, verify, trust)


HANDLERS: list[FileHandler] = [PEHandler(), MSIHandler(), CABHandler()]


# ---------------------------------------------------------------- the PKCS#7 side


def _inspect_blob(
    blob: bytes, fingerprint: Fingerprint, verify: bool, trust: FileTrust, start: int = 1
) -> list[FileSignature]:
    if not verify:
        return _report_blob(blob, trust.at or datetime.now(UTC), start)
    try:
        signatures = _parse_envelope(blob)
    except AuthenticodeError:
        raise
    except (SignifyError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise AuthenticodeError(f"corrupt Authenticode signature: {_short(exc)}") from None
    now = trust.at or datetime.now(UTC)
    digests: dict[str, bytes] = {}

    def cached(algorithm: str) -> bytes:
        if algorithm not in digests:
            digests[algorithm] = fingerprint(algorithm)
        return digests[algorithm]

    out: list[FileSignature] = []
    for number, signature in enumerate(signatures, start=start):
        outer = number == start
        location = f"signature {number}" if outer else f"nested signature {number}"
        try:
            result = _one(signature, cached, verify, trust, now, location)
        except SigscopeError as exc:
            if outer and not isinstance(exc, AuthenticodeError):
                raise
            result = FileSignature(kind="authenticode", location=location, error=str(exc)).settle()
        except (SignifyError, ValueError, KeyError, TypeError, IndexError) as exc:
            result = FileSignature(
                kind="authenticode", location=location, error=f"corrupt signature: {_short(exc)}"
            ).settle()
        out.append(result)
    return out


_OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_OID_SIGNING_TIME = "1.2.840.113549.1.9.5"
_OID_COUNTERSIGNATURE = "1.2.840.113549.1.9.6"
_OID_STATEMENT_TYPE = "1.3.6.1.4.1.311.2.1.11"
_OID_OPUS_INFO = "1.3.6.1.4.1.311.2.1.12"
_OID_NESTED = "1.3.6.1.4.1.311.2.4.1"
_OID_MS_TIMESTAMP = "1.3.6.1.4.1.311.3.3.1"
_SINGULAR_SIGNED = (
    _OID_MESSAGE_DIGEST,
    _OID_CONTENT_TYPE,
    _OID_SIGNING_TIME,
    _OID_STATEMENT_TYPE,
    _OID_OPUS_INFO,
)
_MAX_NESTING = 16


class _Signature:
    """One Authenticode SignedData for --verify, its SignerInfo's attributes indexed once, by OID.

    signify's objects re-parse and re-validate the attributes on every property access (most of the
    cost of reading a signature); this walks the same asn1crypto structures once and applies signify's
    structural rules: SpcIndirectDataContent, one signer, one digest algorithm, no CRLs, an
    issuer-and-serial signer id, contentType and messageDigest present, single and naming
    SpcIndirectData, not both timestamp kinds. (A report reads with _report_blob, which applies the
    rules its facts depend on.)
    """

    __slots__ = ("indirect", "info", "signed", "signed_data", "unsigned")

    def __init__(self, signed_data: cms.SignedData) -> None:
        self.signed_data = signed_data
        encap = signed_data["encap_content_info"]
        if encap["content_type"].dotted != _SPC_INDIRECT_DATA:
            raise AuthenticodeError(
                f"corrupt Authenticode signature: content is {encap['content_type'].native}, "
                "not SpcIndirectDataContent"
            )
        infos = signed_data["signer_infos"]
        if len(infos) != 1:
            raise AuthenticodeError(f"corrupt Authenticode signature: {len(infos)} signers, not 1")
        info: cms.SignerInfo = infos[0]
        self.info = info
        self.signed = _index(info["signed_attrs"])
        self.unsigned = _index(info["unsigned_attrs"])
        for oid in (_OID_COUNTERSIGNATURE, _OID_MS_TIMESTAMP):
            if len(self.unsigned.get(oid, ())) > 1:
                raise AuthenticodeError(f"corrupt Authenticode signature: unsigned attribute {oid} repeated")
        if _OID_COUNTERSIGNATURE in self.unsigned and _OID_MS_TIMESTAMP in self.unsigned:
            raise AuthenticodeError(
                "corrupt Authenticode signature: both a countersignature and an RFC 3161 token"
            )
        self._strict(signed_data, info)
        content = encap["content"]
        self.indirect = IndirectData(content.parsed if hasattr(content, "parsed") else content)

    def _strict(self, signed_data: cms.SignedData, info: cms.SignerInfo) -> None:
        if len(signed_data["digest_algorithms"]) > 1:
            raise AuthenticodeError("corrupt Authenticode signature: more than one digest algorithm")
        if signed_data["crls"]:
            raise AuthenticodeError("corrupt Authenticode signature: SignedData carries CRLs")
        if info["sid"].name == "subject_key_identifier":
            raise AuthenticodeError("corrupt Authenticode signature: signer identified by key identifier")
        for oid in (_OID_CONTENT_TYPE, _OID_MESSAGE_DIGEST):
            if oid not in self.signed:
                raise AuthenticodeError(
                    "corrupt Authenticode signature: contentType or messageDigest missing"
                )
        for oid in _SINGULAR_SIGNED:
            if len(self.signed.get(oid, ())) > 1:
                raise AuthenticodeError(f"corrupt Authenticode signature: signed attribute {oid} repeated")
        if self.signed[_OID_CONTENT_TYPE][0].dotted != _SPC_INDIRECT_DATA:
            raise AuthenticodeError(
                "corrupt Authenticode signature: signed contentType is not SpcIndirectData"
            )


class _Values:
    """An attribute's values, parsed on first use: a report reads few of the attributes it indexes."""

    __slots__ = ("_attributes", "_values")

    def __init__(self) -> None:
        self._attributes: list[cms.CMSAttribute] = []
        self._values: list[Any] | None = None

    def add(self, attribute: cms.CMSAttribute) -> None:
        self._attributes.append(attribute)

    def values(self) -> list[Any]:
        if self._values is None:
            self._values = [v for a in self._attributes for v in a["values"]]
        return self._values

    def __len__(self) -> int:
        return len(self.values())

    def __getitem__(self, index: int) -> Any:
        return self.values()[index]

    def __iter__(self) -> Any:
        return iter(self.values())


def _index(attributes: cms.CMSAttributes | None) -> dict[str, _Values]:
    found: dict[str, _Values] = {}
    for attribute in attributes or []:
        dotted = attribute["type"].dotted
        entry = found.get(dotted)
        if entry is None:
            entry = found[dotted] = _Values()
        entry.add(attribute)
    return found


def _parse_envelope(blob: bytes) -> list[_Signature]:
    """The outer signature and every nested one (szOID_NESTED_SIGNATURE), depth first as signify
    orders them."""
    content_info = cms.ContentInfo.load(blob)
    if content_info["content_type"].dotted != _OID_SIGNED_DATA:
        raise AuthenticodeError("corrupt Authenticode signature: ContentInfo does not contain SignedData")
    out: list[_Signature] = []

    def walk(signed_data: cms.SignedData, depth: int) -> None:
        signature = _Signature(signed_data)
        out.append(signature)
        for nested in signature.unsigned.get(_OID_NESTED, ()):
            if nested["content_type"].dotted != _OID_SIGNED_DATA:
                raise AuthenticodeError("corrupt Authenticode signature: nested signature is not SignedData")
            if depth >= _MAX_NESTING:
                raise AuthenticodeError("corrupt Authenticode signature: nested signatures nest too deeply")
            walk(nested["content"], depth + 1)

    walk(content_info["content"], 0)
    return out


# ---------------------------------------------------------------- reports (no --verify)

_ACCEPTED_DIGESTS = ("md5", "sha1", "sha256", "sha384", "sha512")  # signify's, which --verify parses with
_SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
_REPORT_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, SignifyError)


def _report_blob(blob: bytes, now: datetime, start: int) -> list[FileSignature]:
    """The facts of every signature in a blob, read with pkcs7's DER readers: what --verify reports
    before its checks, at a fraction of the cost, and nothing verified."""
    try:
        found: list[tuple[pkcs7.SignedFacts, pkcs7.SignerFacts]] = []
        _report_walk(pkcs7.content_info(blob), found, 0)
    except AuthenticodeError:
        raise
    except _REPORT_ERRORS as exc:
        raise AuthenticodeError(f"corrupt Authenticode signature: {_short(exc)}") from None
    out: list[FileSignature] = []
    for number, (facts, signer) in enumerate(found, start=start):
        location = f"signature {number}" if number == start else f"nested signature {number}"
        try:
            out.append(_report_one(facts, signer, now, location))
        except _REPORT_ERRORS as exc:
            out.append(
                FileSignature(
                    kind="authenticode", location=location, error=f"corrupt signature: {_short(exc)}"
                ).settle()
            )
    return out


def _report_walk(
    facts: pkcs7.SignedFacts, found: list[tuple[pkcs7.SignedFacts, pkcs7.SignerFacts]], depth: int
) -> None:
    """The structural rules a report's facts depend on, then the nested signatures, depth first."""
    if facts.content_type != _SPC_INDIRECT_DATA:
        raise AuthenticodeError(
            f"corrupt Authenticode signature: content is {facts.content_type}, not SpcIndirectDataContent"
        )
    if len(facts.signers) != 1:
        raise AuthenticodeError(f"corrupt Authenticode signature: {len(facts.signers)} signers, not 1")
    signer = facts.signer()
    for oid in (_OID_COUNTERSIGNATURE, _OID_MS_TIMESTAMP):
        if len(signer.unsigned.get(oid)) > 1:
            raise AuthenticodeError(f"corrupt Authenticode signature: unsigned attribute {oid} repeated")
    if _OID_COUNTERSIGNATURE in signer.unsigned and _OID_MS_TIMESTAMP in signer.unsigned:
        raise AuthenticodeError(
            "corrupt Authenticode signature: both a countersignature and an RFC 3161 token"
        )
    found.append((facts, signer))
    for nested in signer.unsigned.get(_OID_NESTED):
        if depth >= _MAX_NESTING:
            raise AuthenticodeError("corrupt Authenticode signature: nested signatures nest too deeply")
        try:
            inner = pkcs7.content_info(nested)
        except ValueError as exc:
            raise AuthenticodeError(
                f"corrupt Authenticode signature: nested signature: {_short(exc)}"
            ) from None
        _report_walk(inner, found, depth + 1)


def _report_one(
    facts: pkcs7.SignedFacts, signer: pkcs7.SignerFacts, now: datetime, location: str
) -> FileSignature:
    if facts.content is None:
        raise ValueError("SignedData carries no SpcIndirectDataContent")
    data, message_digest = facts.content.expect(0, 16, "SpcIndirectDataContent").children()[:2]
    data_parts = data.expect(0, 16, "SpcAttributeTypeAndOptionalValue").children()
    algorithm = pkcs7.digest_name(message_digest.expect(0, 16, "DigestInfo").children()[0])
    if algorithm not in _ACCEPTED_DIGESTS:
        raise ValueError(f"SpcIndirectDataContent.digestAlgorithm {algorithm} is not accepted")
    pool = facts.load_certificates()
    leaf = signer.find(pool, by_value=False)
    result = FileSignature(kind="authenticode", location=location, digest_algorithm=algorithm)
    if leaf is not None:
        result.signer = pkcs7.summarize(leaf, now)
        result.chain = tuple(pkcs7.summarize(c, now) for c in _order_chain(leaf, pool, pkcs7.issued_by))
    opus = signer.signed.get(_OID_OPUS_INFO)
    if opus:
        try:
            names = _opus_names(opus[0])
            if names is not None:
                for key, value in zip(("programName", "moreInfo"), names, strict=True):
                    if value:
                        result.details[key] = str(value)
            else:  # anything but the plain shape: asn1crypto decides, as --verify's reader does
                info = SpcSpOpusInfo.load(opus[0].der)
                for key, field_name in (("programName", "program_name"), ("moreInfo", "more_info")):
                    value = info[field_name].native
                    if value:
                        result.details[key] = str(value)
        except _REPORT_ERRORS:
            pass
    content_type = pkcs7.oid(data_parts[0])
    result.details["content"] = str(SpcAttributeType.map(content_type))
    if content_type == _SPC_PE_IMAGE_DATA and len(data_parts) > 1:
        try:  # page hashes: rare, so signify's reader is fine for them
            if _has_moniker(data_parts[1]):
                pages = len(list(PeImageData(SpcPeImageData.load(data_parts[1].der)).page_hashes))
                if pages:
                    result.details["pageHashes"] = (
                        f"{pages} pages, not checked (the image digest covers them)"
                    )
        except _REPORT_ERRORS:
            pass
    result.timestamp = _report_timestamp(signer, pool, now)
    _flag(result)
    return result.settle()


def _opus_names(value: pkcs7.Tlv) -> tuple[str | None, str | None] | None:
    """SpcSpOpusInfo's programName and moreInfo when they take the usual shape: an optional [0] holding
    a BMPString or IA5String, an optional [1] holding a URL, definite lengths. None for anything else
    (a moniker or file link, a publisher link, BER, bad text), which SpcSpOpusInfo then reads: building
    the asn1crypto object was a tenth of a PE report's cost."""
    if not value.plain or value.cls != 0 or value.tag != 16 or not value.constructed:
        return None
    found: list[str | None] = [None, None]
    last = -1
    try:
        fields = value.children()
    except ValueError:
        return None
    for field in fields:
        if field.cls != 2 or field.tag > 1 or field.tag <= last or not field.constructed or not field.plain:
            return None
        last = field.tag
        try:
            inner = field.children()
        except ValueError:  # asn1crypto reads an explicit tag's first value and ignores what follows
            return None
        if len(inner) != 1:
            return None
        text = inner[0]
        if text.cls != 2 or text.constructed or not text.plain:
            return None
        if field.tag == 0 and text.tag in (0, 1):  # SpcString: unicode [0] BMPString, ascii [1] IA5String
            encoding = "utf-16-be" if text.tag == 0 else "ascii"
        elif field.tag == 1 and text.tag == 0:  # SpcLink: url [0] IA5String
            encoding = "ascii"
        else:
            return None
        try:
            found[field.tag] = text.body.decode(encoding)
        except UnicodeDecodeError:
            return None
    return found[0], found[1]


def _has_moniker(image_data: pkcs7.Tlv) -> bool:
    """SpcPeImageData's file link is a moniker (SpcSerializedObject, where page hashes live)."""
    for part in image_data.children():
        if part.cls == 2 and part.tag == 0:  # file [0] EXPLICIT SpcLink
            link = part.children()
            return bool(link) and link[0].cls == 2 and link[0].tag == 1
    return False


def _report_timestamp(
    signer: pkcs7.SignerFacts, pool: list[x509.Certificate], now: datetime
) -> TimestampInfo | None:
    counters = signer.unsigned.get(_OID_COUNTERSIGNATURE)
    if counters:
        try:
            return pkcs7.countersignature_facts(counters[0], pool, now, by_value=False)
        except _REPORT_ERRORS as exc:
            return TimestampInfo(kind="authenticode", detail=f"malformed countersignature: {_short(exc)}")
    tokens = signer.unsigned.get(_OID_MS_TIMESTAMP)
    if tokens:
        try:
            return pkcs7.token_facts(tokens[0], now)
        except _REPORT_ERRORS as exc:
            return TimestampInfo(kind="rfc3161", detail=f"malformed timestamp token: {_short(exc)}")
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _certificates(signed_data: cms.SignedData) -> list[x509.Certificate]:
    found: list[x509.Certificate] = []
    for choice in signed_data["certificates"] or []:
        if choice.name != "certificate":
            continue
        try:
            found.append(x509.load_der_x509_certificate(choice.chosen.dump()))
        except (ValueError, x509.InvalidVersion):
            continue  # an unparseable extra certificate cannot be the signer; the signer check reports
    return found


def _find_signer(info: cms.SignerInfo, pool: Sequence[x509.Certificate]) -> x509.Certificate | None:
    sid = info["sid"]
    if sid.name == "issuer_and_serial_number":
        issuer = sid.chosen["issuer"].dump()
        serial = sid.chosen["serial_number"].native
        for cert in pool:
            if cert.serial_number != serial:
                continue
            raw = cert.issuer.public_bytes()
            # Identical DER is the common case; re-encoding through asn1crypto only normalises the rest.
            if raw == issuer or asn1_x509.Name.load(raw).dump() == issuer:
                return cert
    else:
        key_id = sid.chosen.native
        for cert in pool:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except (x509.ExtensionNotFound, ValueError):
                continue
            if ski == key_id:
                return cert
    return None


def _order_chain(
    leaf: x509.Certificate,
    pool: Sequence[x509.Certificate],
    issued_by: Callable[[x509.Certificate, x509.Certificate], bool] = certs.issued_by,
) -> list[x509.Certificate]:
    """The carried certificates, leaf excluded: the issuing path upward first, then any others."""
    # `is` first: comparing a certificate with itself walks both (a report's pool repeats objects)
    path: list[x509.Certificate] = []
    current = leaf
    while len(path) < len(pool):
        parent = next(
            (
                c
                for c in pool
                if c is not current and c != current and c not in path and issued_by(current, c)
            ),
            None,
        )
        if parent is None or parent is leaf or parent == leaf:
            break
        path.append(parent)
        current = parent
    rest = [c for c in pool if c is not leaf and c != leaf and c not in path]
    return path + rest


def _hash_name(algorithm: cms.DigestAlgorithm) -> str:
    name = str(algorithm["algorithm"].native)
    if name not in _HASHES:
        raise AuthenticodeError(f"unsupported digest algorithm {name}")
    return name


def _attribute(info: cms.SignerInfo, name: str) -> Any:
    for attribute in info["signed_attrs"] or []:
        if attribute["type"].native == name:
            return attribute["values"][0]
    return None


@dataclass
class _SignerCheck:
    cert: x509.Certificate | None
    digest_ok: bool
    signature_ok: bool
    detail: str


def _check_signer_info(
    info: cms.SignerInfo, content: bytes, pool: Sequence[x509.Certificate], content_type: str | None
) -> _SignerCheck:
    """One CMS SignerInfo: messageDigest over `content`, then the signer's key over the signed attributes."""
    cert = _find_signer(info, pool)
    algorithm = _hash_name(info["digest_algorithm"])
    if not info["signed_attrs"]:
        return _SignerCheck(cert, False, False, "signer info has no signed attributes")
    message_digest = _attribute(info, "message_digest")
    expected = hashlib.new(algorithm, content).digest()
    digest_ok = message_digest is not None and bytes(message_digest.native) == expected
    if content_type is not None:
        signed_type = _attribute(info, "content_type")
        if signed_type is None or signed_type.dotted != content_type:
            return _SignerCheck(cert, digest_ok, False, "signed contentType does not name the signed content")
    if cert is None:
        return _SignerCheck(None, digest_ok, False, "the signing certificate is not in the signature")
    signed = cms.CMSAttributes(contents=info["signed_attrs"].contents).dump()
    signature = bytes(info["signature"].native)
    algo = info["signature_algorithm"]
    pss = algo["algorithm"].native == "rsassa_pss"
    hash_algorithm = _HASHES[algorithm]()
    if pss:
        hash_algorithm = _HASHES.get(
            str(algo["parameters"]["hash_algorithm"]["algorithm"].native), hashes.SHA1
        )()
    try:
        key = cert.public_key()
    except ValueError as exc:
        return _SignerCheck(cert, digest_ok, False, f"signing certificate key unusable: {exc}")
    ok = certs.verify_with_key(key, signature, signed, hash_algorithm=hash_algorithm, pss=pss)
    detail = f"{algo.signature_algo if not pss else 'rsassa_pss'} with {algorithm}"
    return _SignerCheck(cert, digest_ok, ok, detail)


def _one(
    signature: _Signature,
    fingerprint: Fingerprint,
    verify: bool,
    trust: FileTrust,
    now: datetime,
    location: str,
) -> FileSignature:
    signed_data = signature.signed_data
    info = signature.info
    pool = _certificates(signed_data)
    leaf = _find_signer(info, pool)
    indirect = signature.indirect
    algorithm = indirect.digest_algorithm().name
    result = FileSignature(kind="authenticode", location=location, digest_algorithm=algorithm)
    if leaf is not None:
        result.signer = certs.summarize(leaf, now)
        result.chain = tuple(certs.summarize(c, now) for c in _order_chain(leaf, pool))
    _describe(signature, indirect, result)
    stamp = _timestamp(signature, pool, now)
    result.timestamp = stamp.info if stamp else None

    _flag(result)
    if not verify:
        return result.settle()

    # digest: the file against SpcIndirectDataContent, and the signed attributes against that content
    content = _indirect_content(signature)
    actual = fingerprint(algorithm)
    signer_check = _check_signer_info(info, content, pool, _SPC_INDIRECT_DATA)
    if actual != indirect.digest:
        result.checks.append(
            Check.failed(
                "digest", f"the file's {algorithm} digest does not match the signed digest (content modified)"
            )
        )
    elif not signer_check.digest_ok:
        result.checks.append(
            Check.failed("digest", "the signed attributes' messageDigest does not cover the signed content")
        )
    else:
        result.checks.append(Check.passed("digest", f"{algorithm} {actual.hex()}"))
    if signer_check.signature_ok:
        result.checks.append(Check.passed("signature", signer_check.detail))
    else:
        result.checks.append(
            Check.failed(
                "signature",
                f"the signature over the signed attributes does not verify ({signer_check.detail})",
            )
        )

    # timestamp: judged on its own; only a valid one moves the chain's clock
    at = now
    if stamp is None:
        result.checks.append(
            Check.skipped("timestamp", "no timestamp: the chain is judged at the current time")
        )
    else:
        stamp.verify(bytes(info["signature"].native), trust)
        if stamp.info.status is Outcome.PASSED and stamp.info.time is not None:
            at = stamp.info.time
            result.checks.append(Check.passed("timestamp", stamp.info.detail))
        else:
            result.checks.append(
                Check.skipped("timestamp", f"timestamp not used: {stamp.info.detail}; chain judged now")
            )
            result.warnings.append(f"the timestamp is not valid: {stamp.info.detail}")

    # trusted-chain
    if leaf is None:
        result.checks.append(Check.failed("trusted-chain", "the signing certificate is not in the signature"))
        result.chain_status = "untrusted: no signing certificate"
    else:
        chain = pkcs7.validate_chain(leaf, _intermediates(leaf, pool), trust.roots, at, (CODE_SIGNING,))
        when = f"at the timestamp {at.isoformat()}" if at is not now else "now"
        if chain.ok:
            root = chain.chain[-1].subject.rfc4514_string()
            result.checks.append(Check.passed("trusted-chain", f"chains to {root} {when}, codeSigning"))
            result.chain_status = "trusted"
            if chain.detail.startswith("SHA-1"):
                result.warnings.append("the chain relies on SHA-1 certificate signatures (legacy)")
        else:
            result.checks.append(Check.failed("trusted-chain", f"{chain.detail} ({when})"))
            result.chain_status = f"untrusted: {chain.detail}"
    return result.settle()


def _flag(result: FileSignature) -> None:
    """Warnings every mode shows: self-signed, expired, no codeSigning, a legacy file digest."""
    if result.signer is not None:
        if result.signer.self_signed:
            result.warnings.append("the signing certificate is self-signed")
        if result.signer.expired:
            result.warnings.append(f"the signing certificate expired on {result.signer.not_after.date()}")
        if result.signer.eku and "codeSigning" not in result.signer.eku:
            result.warnings.append(
                f"the signing certificate lacks codeSigning (has {', '.join(result.signer.eku)})"
            )
    if result.digest_algorithm in _LEGACY_HASHES:
        result.warnings.append(
            f"the file digest uses {result.digest_algorithm}, which no longer protects against forgery"
        )


def _indirect_content(signature: _Signature) -> bytes:
    """The bytes the messageDigest covers: SpcIndirectDataContent without its outer tag and length."""
    content = signature.signed_data["encap_content_info"]["content"]
    if hasattr(content, "parsed"):
        return bytes(content)
    return bytes(content.contents)


def _describe(signature: _Signature, indirect: IndirectData, result: FileSignature) -> None:
    opus = signature.signed.get(_OID_OPUS_INFO)
    for key, field_name in (("programName", "program_name"), ("moreInfo", "more_info")):
        try:
            value = opus[0][field_name].native if opus else None
        except (SignifyError, KeyError, ValueError, AttributeError, TypeError):
            value = None
        if value:
            result.details[key] = str(value)
    try:
        result.details["content"] = str(indirect.content_type)
        if indirect.content_type == "microsoft_spc_pe_image_data":
            image = indirect.content
            if (
                isinstance(image, PeImageData)
                and image.file_link_type == "moniker"
                and image.serialized_data_asn1_available
            ):
                pages = len(list(image.page_hashes))
                if pages:
                    result.details["pageHashes"] = (
                        f"{pages} pages, not checked (the image digest covers them)"
                    )
    except (SignifyError, KeyError, ValueError, AttributeError, TypeError):
        pass


# ---------------------------------------------------------------- timestamps


class _Timestamp:
    """A legacy countersignature or an RFC 3161 token, with what verifying it needs."""

    def __init__(
        self,
        kind: str,
        pool: list[x509.Certificate],
        now: datetime,
        *,
        counter: cms.SignerInfo | None = None,
        token: timestamp.TimestampToken | None = None,
        malformed: str = "",
    ) -> None:
        self.kind = kind
        self.pool = pool
        self.counter = counter
        self.token = token
        self.malformed = malformed
        self.cert: x509.Certificate | None = None
        time: datetime | None = None
        if token is not None:
            self.cert, time = token.signer, token.gen_time
        elif counter is not None:
            self.cert = _find_signer(counter, pool)
            signing_time = _attribute(counter, "signing_time")
            time = signing_time.native if signing_time is not None else None
        authority = certs.summarize(self.cert, now) if self.cert is not None else None
        self.info = TimestampInfo(kind=kind, time=time, authority=authority, detail=malformed)

    def verify(self, signature_value: bytes, trust: FileTrust) -> None:
        self.info.status, self.info.detail = self._verify(signature_value, trust)

    def _verify(self, signature_value: bytes, trust: FileTrust) -> tuple[Outcome, str]:
        if self.token is not None:
            # RFC 3161: the shared verifier (imprint, CMS signature, ESS signer, TSA chain at genTime).
            result = timestamp.verify_timestamp(
                self.token, signature_value, trust.roots, intermediates=self.pool
            )
            if result.ok:
                return Outcome.PASSED, f"rfc3161 timestamp {result.time.isoformat()} by {result.tsa_name}"
            if [c.name for c in result.failures] == [timestamp.CHECK_CHAIN]:
                return Outcome.FAILED, f"timestamp authority not trusted: {result.detail}"
            return Outcome.FAILED, result.detail
        if self.counter is None:
            return Outcome.FAILED, self.malformed or "malformed timestamp"
        try:
            check = _check_signer_info(self.counter, signature_value, self.pool, None)
        except (SigscopeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return Outcome.FAILED, f"malformed countersignature: {_short(exc)}"
        if not check.digest_ok:
            return Outcome.FAILED, "the countersignature's messageDigest does not match the signature value"
        if not check.signature_ok:
            return Outcome.FAILED, f"the countersignature does not verify ({check.detail})"
        if self.cert is None or self.info.time is None:
            return Outcome.FAILED, "the countersignature has no signer certificate or no signing time"
        chain = pkcs7.validate_chain(
            self.cert, _intermediates(self.cert, self.pool), trust.roots, self.info.time, (TIME_STAMPING,)
        )
        if not chain.ok:
            return Outcome.FAILED, f"timestamp authority not trusted: {chain.detail}"
        authority = self.cert.subject.rfc4514_string()
        return Outcome.PASSED, f"authenticode timestamp {self.info.time.isoformat()} by {authority}"


def _timestamp(signature: _Signature, pool: list[x509.Certificate], now: datetime) -> _Timestamp | None:
    counters = signature.unsigned.get(_OID_COUNTERSIGNATURE)
    if counters:  # PKCS#9 countersignature (legacy Authenticode timestamp)
        try:
            counter = cms.SignerInfo.load(counters[0].dump())
        except (ValueError, TypeError, KeyError) as exc:
            return _Timestamp("authenticode", pool, now, malformed=f"malformed countersignature: {exc}")
        return _Timestamp("authenticode", pool, now, counter=counter)
    tokens = signature.unsigned.get(_OID_MS_TIMESTAMP)
    if tokens:  # szOID_RFC3161_counterSign: a TimeStampToken
        try:
            token = timestamp.parse_token(tokens[0].dump())
        except (SigscopeError, ValueError, TypeError, KeyError) as exc:
            return _Timestamp("rfc3161", pool, now, malformed=str(exc))
        return _Timestamp("rfc3161", pool, now, token=token)
    return None


# ---------------------------------------------------------------- chains


def _intermediates(leaf: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Carried certificates that can be intermediates: a self-signed one is a root, and a root is trusted
    only when the user supplied it, never because the signature carries it."""
    return [c for c in pool if c != leaf and not certs.is_self_signed(c)]
