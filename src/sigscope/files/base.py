"""Records and the handler interface shared by every signed-file type.

A handler knows one family of file types: it decides from the first bytes whether a file is its kind
(`sniff`, cheap, no parsing), then reads the signatures out of it (`inspect`), verifying them only when
the scan asks. The walker (`scan/files.py`) is the only place that walks trees, pools processes and
hashes whole files for the report; handlers read only what their format needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509

from sigscope.model import CertificateInfo, Check, Outcome, PGPSigner, PublicKeyInfo, Status
from sigscope.sources.localfile import ANYWHERE, Boundary

HEAD_SIZE = 4096  # bytes the walker reads before deciding; handlers sniff within this


@dataclass(frozen=True)
class FileLimits:
    """How much work one file may cost (docs/limits.md). A file past a limit is one error row naming it."""

    # Inflated bytes read from one archive, all entries together: a JAR of 40 GiB of zeros is a 42 MB file.
    max_decompressed: int = 2 * 1024**3
    # Inflated / stored bytes of one entry, checked once an entry passes RATIO_GRACE: deflate reaches
    # ~1032:1 on zeros, real code and resources stay well under 100:1 (Apache POI's zip-bomb rule is 100:1).
    max_ratio: int = 100
    # A file a check must hold whole in memory (an Ed25519 signature signs the message itself, not a hash).
    max_in_memory: int = 64 * 1024**2


RATIO_GRACE = 1 << 20  # small entries of repetitive text compress far past any ratio and cost nothing


@dataclass(frozen=True)
class FileTrust:
    """What every handler is given besides the file: trust material for `--verify` (empty roots: chains
    are reported as untrusted, never verified), the scan's limits, and where files next to this one may be
    read from (a detached signature's partner must stay inside the scanned tree)."""

    roots: tuple[x509.Certificate, ...] = ()
    at: datetime | None = None  # the clock; None means now (the walker fills it in once per scan)
    # Detached signatures: trusted public keys (`--key`, cosign sign-blob / key-signed bundles) and OpenPGP
    # keys (`--gpg-keyring`); typed loosely so handlers that never need them import nothing for them.
    keys: tuple[Any, ...] = ()  # cryptography public keys
    gpg_keyring: Any = None  # sigscope.trust.pgp.Keyring | None
    # Keyless Sigstore bundles (`--trusted-root` with the --certificate-identity policy):
    # sigscope.trust.identity.CertificateTrust | None, its `sigstore` set.
    sigstore: Any = None
    limits: FileLimits = field(default_factory=FileLimits)
    boundary: Boundary = ANYWHERE


@dataclass
class TimestampInfo:
    """A countersignature or RFC 3161 token on a file signature."""

    kind: str  # "rfc3161" | "authenticode" (legacy PKCS#9 countersignature) | ...
    time: datetime | None = None
    authority: CertificateInfo | None = None  # the TSA / countersigner certificate
    status: Outcome = Outcome.SKIPPED  # passed/failed when checked; skipped without --verify
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "status": str(self.status)}
        if self.time:
            out["time"] = self.time.isoformat()
        if self.authority is not None:
            out["authority"] = self.authority.to_json()
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class FileSignature:
    """One signature inside (or next to) one file."""

    kind: str  # "authenticode", "jar", "powershell", "xmldsig", "openpgp", "sigstore-bundle", "cosign-blob"
    signer: CertificateInfo | None = None
    chain: tuple[CertificateInfo, ...] = ()  # certificates carried with the signature, leaf excluded
    pgp: PGPSigner | None = None
    public_key: PublicKeyInfo | None = None
    digest_algorithm: str = ""  # "sha256", ...
    timestamp: TimestampInfo | None = None
    location: str = ""  # "META-INF/SIGNER.RSA", "nested signature 2", "foo.tar.gz.asc", ...
    checks: list[Check] = field(default_factory=list)
    status: Status = Status.UNVERIFIED
    chain_status: str = ""  # "trusted", "untrusted: <why>", "" when not checked
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # type-specific facts (unsigned JAR entries, ...)

    @property
    def reason(self) -> str:
        if self.error:
            return self.error
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if c.outcome is Outcome.FAILED)

    def settle(self, trusted_check: str = "trusted-chain") -> FileSignature:
        """Status from the checks: any failed integrity check → invalid; a failed chain → untrusted;
        all passed including the chain → verified; integrity only → integrity-ok; nothing → unverified."""
        integrity = [c for c in self.checks if c.name != trusted_check]
        trust = [c for c in self.checks if c.name == trusted_check]
        if self.error or any(c.outcome is Outcome.FAILED for c in integrity):
            self.status = Status.INVALID
        elif any(c.outcome is Outcome.FAILED for c in trust):
            self.status = Status.UNTRUSTED
        elif trust and all(c.outcome is Outcome.PASSED for c in trust):
            self.status = Status.VERIFIED
        elif any(c.outcome is Outcome.PASSED for c in integrity):
            self.status = Status.INTEGRITY_OK
        else:
            self.status = Status.UNVERIFIED
        return self

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "status": str(self.status)}
        if self.location:
            out["location"] = self.location
        if self.signer is not None:
            out["signer"] = self.signer.to_json()
        if self.chain:
            out["chain"] = [c.to_json() for c in self.chain]
        if self.pgp is not None:
            out["pgp"] = self.pgp.to_json()
        if self.public_key is not None:
            out["publicKey"] = self.public_key.to_json()
        if self.digest_algorithm:
            out["digestAlgorithm"] = self.digest_algorithm
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp.to_json()
        if self.chain_status:
            out["chainStatus"] = self.chain_status
        if self.checks:
            out["checks"] = [c.to_json() for c in self.checks]
        if self.status is Status.INVALID:
            out["reason"] = self.reason
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.error:
            out["error"] = self.error
        if self.details:
            out["details"] = self.details
        return out


@dataclass
class FileResult:
    """One file the walker looked at and found signed, or failed to read."""

    path: str
    type: str  # "pe", "msi", "cab", "jar", "powershell", "xml", "detached", ...
    size: int = 0
    digest: str | None = None  # "sha256:<hex>" of the whole file
    signatures: list[FileSignature] = field(default_factory=list)
    error: str | None = None  # unreadable, truncated, corrupt: reported, the scan goes on


class FileHandler(Protocol):
    """One family of signed-file types. Implementations are stateless and picklable (process pool)."""

    name: str  # the FileResult.type it produces

    def sniff(self, head: bytes, path: Path) -> bool:
        """True when `head` (the first HEAD_SIZE bytes) says this is our kind and it may carry a signature.

        Must be cheap: it runs on every file in the tree. The path is for detached signatures and for
        text formats (PowerShell) whose magic is weak; never decide by extension alone for binaries.
        """
        ...

    def inspect(self, path: Path, verify: bool, trust: FileTrust) -> Sequence[FileSignature]:
        """The signatures in the file; empty when it turns out unsigned.

        Without `verify`: identities, timestamps and flags only. With it: named checks (digests over the
        signed content, signature over the signed attributes, chain to `trust.roots` with codeSigning,
        timestamp) and a settled status. Raises `sigscope.errors.SigscopeError` subclasses (never bare
        exceptions) for corrupt input; the walker turns them into FileResult.error.
        """
        ...
