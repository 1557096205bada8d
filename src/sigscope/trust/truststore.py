"""Notation trust stores, read as notation writes them (FORMATS §2.7).

Layout: `TRUSTSTORE/x509/{ca,signingAuthority,tsa}/NAME/*` — each file one or more PEM or DER
certificates. The pure part (`parse_certificate_file`, `validate_store_certificates`) takes bytes; the
loader (`load_trust_store`) reads only the named stores a trust policy references, with notation-go's
rules: store names `[a-zA-Z0-9_.-]+`, symlinked store directories or files refused, sub-directories
ignored (with a warning), every file must hold at least one certificate, `ca`/`signingAuthority`
certificates must be CA or self-signed, `tsa` certificates must be self-signed root CAs, and an empty
store is an error. Trust is conferred only by a policy naming `TYPE:NAME`.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from sigscope.trust import certs, notary_certs

STORE_TYPES = ("ca", "signingAuthority", "tsa")
_STORE_NAME = re.compile(r"[a-zA-Z0-9_.-]+")


class TrustStoreError(ValueError):
    """A trust store that cannot be used: missing, malformed, or holding certificates it must not."""


@dataclass(frozen=True, order=True)
class StoreRef:
    """`TYPE:NAME` as a trust policy writes it."""

    type: str
    name: str

    def __str__(self) -> str:
        return f"{self.type}:{self.name}"


def valid_store_name(name: str) -> bool:
    return bool(_STORE_NAME.fullmatch(name))


def parse_certificate_file(data: bytes, path: str) -> list[x509.Certificate]:
    """One or more PEM certificates, or one or more concatenated DER certificates."""
    if b"-----BEGIN" in data:
        try:
            found = certs.load_pem_chain(data)
        except certs.CertificateError as exc:
            raise TrustStoreError(f"error while reading certificates from {path}: {exc}") from None
    else:
        found = _load_der_sequence(data, path)
    if not found:
        raise TrustStoreError(
            f"could not parse a certificate from {path}, every file in a trust store must have a PEM or DER "
            "certificate in it"
        )
    return found


def _load_der_sequence(data: bytes, path: str) -> list[x509.Certificate]:
    found: list[x509.Certificate] = []
    offset = 0
    while offset < len(data):
        end = _der_end(data, offset)
        if end is None:
            raise TrustStoreError(f"error while reading certificates from {path}: malformed certificate")
        try:
            found.append(certs.load_der(data[offset:end]))
        except certs.CertificateError as exc:
            raise TrustStoreError(f"error while reading certificates from {path}: {exc}") from None
        offset = end
    return found


def _der_end(data: bytes, offset: int) -> int | None:
    """End of the DER SEQUENCE starting at `offset`, or None when it is not one."""
    if offset + 2 > len(data) or data[offset] != 0x30:
        return None
    first = data[offset + 1]
    if first < 0x80:
        length, header = first, 2
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or offset + 2 + count > len(data):
            return None
        length = int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
        header = 2 + count
    end = offset + header + length
    return end if end <= len(data) else None


def _signed_by_own_key(cert: x509.Certificate) -> bool:
    # Go's CheckSignature(cert.SignatureAlgorithm, RawTBS, Signature): the key signs itself, names aside.
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def validate_store_certificates(store_type: str, found: Iterable[x509.Certificate], path: str) -> None:
    """notation-go's per-file rules for what a store of `store_type` may hold."""
    for cert in found:
        subject = cert.subject.rfc4514_string()
        if store_type == "tsa":
            if not (notary_certs.is_ca(cert) and certs.is_self_signed(cert)):
                raise TrustStoreError(
                    f"trust store tsa contains invalid certificate in {path}: certificate with subject "
                    f"{subject!r} is not a root CA certificate (tsa stores hold self-signed root CAs only)"
                )
        elif not notary_certs.is_ca(cert) and not _signed_by_own_key(cert):
            raise TrustStoreError(
                f"certificate with subject {subject!r} from file {path} is not a CA certificate or "
                "self-signed signing certificate"
            )


@dataclass
class TrustStore:
    """The certificates of each named store a policy uses; `warnings` for what was ignored."""

    stores: dict[StoreRef, list[x509.Certificate]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_certificates(cls, stores: Mapping[StoreRef, list[x509.Certificate]]) -> TrustStore:
        return cls(stores=dict(stores))

    def certificates(self, refs: Iterable[StoreRef], store_type: str) -> list[x509.Certificate]:
        out: list[x509.Certificate] = []
        for ref in refs:
            if ref.type == store_type:
                out.extend(self.stores.get(ref, ()))
        return out


def load_trust_store(root: Path, refs: Iterable[StoreRef]) -> TrustStore:
    """Read the named stores under `root` (the directory holding `x509/`)."""
    x509_dir = root / "x509"
    if not x509_dir.is_dir():
        raise TrustStoreError(
            f"trust store {root} has no x509/ directory (expected "
            f"{root}/x509/{{ca,signingAuthority,tsa}}/NAME/)"
        )
    store = TrustStore()
    for ref in sorted(set(refs)):
        if ref.type not in STORE_TYPES:
            raise TrustStoreError(f"unsupported trust store type {ref.type!r} in {ref}")
        if not valid_store_name(ref.name):
            raise TrustStoreError(f"trust store name {ref.name!r} must follow [a-zA-Z0-9_.-]+")
        store.stores[ref] = _load_named(x509_dir / ref.type / ref.name, ref, store.warnings)
    return store


def _load_named(path: Path, ref: StoreRef, warnings: list[str]) -> list[x509.Certificate]:
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise TrustStoreError(f"trust store {ref} does not exist: {path}") from None
    except OSError as exc:
        raise TrustStoreError(f"cannot read trust store {ref} at {path}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise TrustStoreError(
            f"trust store {ref}: {path} is not a regular directory (symlinks are not supported)"
        )
    found: list[x509.Certificate] = []
    try:
        entries = sorted(path.iterdir())
    except OSError as exc:
        raise TrustStoreError(f"cannot read trust store {ref} at {path}: {exc.strerror}") from None
    for entry in entries:
        mode = entry.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise TrustStoreError(f"trust store {ref}: {entry} is a symlink (symlinks are not supported)")
        if stat.S_ISDIR(mode):
            warnings.append(f"trust store {ref}: ignored the sub-directory {entry}")
            continue
        if not stat.S_ISREG(mode):
            raise TrustStoreError(f"trust store {ref}: {entry} is not a regular file")
        try:
            data = entry.read_bytes()
        except OSError as exc:
            raise TrustStoreError(f"cannot read {entry}: {exc.strerror}") from None
        parsed = parse_certificate_file(data, str(entry))
        validate_store_certificates(ref.type, parsed, str(entry))
        found.extend(parsed)
    if not found:
        raise TrustStoreError(f"trust store {ref} at {path} has no x509 certificates")
    return found
