"""Signed JAR, WAR, EAR and APK (v1 scheme) archives: `META-INF/*.SF` + a PKCS#7 block per signer.

Verification follows java.util.jar / `jarsigner -verify -strict`:
  1. the block (`.RSA`, `.DSA`, `.EC`) is a PKCS#7 SignedData whose signature covers the `.SF` bytes;
  2. the `.SF`'s `X-Digest-Manifest` covers the whole manifest; when it does not match, the
     `X-Digest-Manifest-Main-Attributes` must, and every `.SF` section's digest must match its manifest
     section (raw bytes including the blank line that ends it); a mismatch is a tampered manifest;
  3. every entry's content matches the `X-Digest` of its manifest section;
  4. entries no `.SF` section covers (added after signing, or listed only in a manifest edited later)
     are unsigned: `-strict` fails them, and so do we (check `unsigned-entries`);
  5. SHA-1/MD5-only signatures are refused as JDK 17 disables them (unless timestamped before 2019).
The chain rule is jarsigner's: a leaf without extendedKeyUsage is accepted, one with it must allow code
signing (or any usage). Without `--verify` only the central directory, the `.SF`/block pair and the
manifest are read; entry contents are hashed only when verifying.

Everything inflated goes through one `_Inflater` per archive (base.FileLimits): what is held in memory
(manifest, `.SF`, block) stops at MAX_META_SIZE whatever the headers declare, entries are hashed a chunk
at a time, one entry may not inflate past `max_ratio` times its stored size, and the archive as a whole
not past `max_decompressed`. A limit hit is a TooLargeError naming it, which makes the file one error row.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sigscope.errors import IntegrityError, TooLargeError
from sigscope.files import apk, pkcs7
from sigscope.files.base import RATIO_GRACE, FileHandler, FileLimits, FileSignature, FileTrust
from sigscope.model import Check
from sigscope.sources.localfile import open_regular

ZIP_MAGIC = b"PK\x03\x04"
MAX_META_SIZE = 16 * 1024 * 1024  # a manifest or .SF beyond this is not a signature, it is an attack
_BLOCK_SUFFIXES = (".RSA", ".DSA", ".EC")
_CHUNK = 1 << 16  # also the most zipfile inflates at once (a read of n bytes inflates at most n)
MAX_ENTRIES = 250_000  # zipfile keeps a ZipInfo (~0.5 KiB) per entry; the largest real JARs hold ~100k
# (and a directory past 256 bytes per allowed entry is refused unread: names are rarely over 100 bytes)
_SHA1_DEADLINE = datetime(2019, 1, 1, tzinfo=UTC)  # JDK's jdk.jar.disabledAlgorithms "SHA1 denyAfter"

# JAR attribute algorithm names → hashlib names ("SHA-256", "SHA256", "SHA1", "SHA-1", "MD5").
_ALGORITHMS = {"SHA1": "sha1", "SHA224": "sha224", "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}
_DISABLED = {"MD5": "md5", "MD2": "md2"}


@dataclass
class Section:
    raw: bytes  # the section's bytes as they stand in the file, up to and including its ending blank line
    attributes: dict[str, str] = field(default_factory=dict)  # upper-cased names

    def digests(self, suffix: str) -> list[tuple[str, str, str]]:
        """(attribute name, hashlib name or "" when unsupported, base64 value) for "<ALG><suffix>"."""
        out = []
        for name, value in self.attributes.items():
            if name.endswith(suffix):
                alg = name[: -len(suffix)].replace("-", "")
                out.append((name, _ALGORITHMS.get(alg, ""), value))
        return out


@dataclass
class Manifest:
    main: Section
    sections: dict[str, Section]  # by Name (the last wins, as java.util.jar.Manifest does)


def parse_manifest(raw: bytes, what: str = "manifest") -> Manifest:
    """java.util.jar manifest syntax: sections split by blank lines, 72-byte lines continued with a
    leading space, CRLF, LF or CR line ends. Keeps each section's raw bytes for the .SF digests."""
    sections: list[Section] = []
    current: list[bytes] = []
    attributes: dict[str, str] = {}
    last: str | None = None
    # Every piece decoded below is split from the rest at ASCII bytes, so when the whole is UTF-8 each
    # piece is too and needs no per-piece error check (the per-call cost showed in a JAR report).
    try:
        raw.decode("utf-8")
        decode: Callable[[bytes], str] = bytes.decode
    except UnicodeDecodeError:
        decode = functools.partial(_text, what=what)
    # bytes.splitlines breaks at \r\n, \n and \r only: the manifest's line ends
    for line in raw.splitlines(keepends=True):
        text = line.rstrip(b"\r\n")
        current.append(line)
        if not text:
            if len(current) > 1 or not sections:
                sections.append(Section(b"".join(current), attributes))
            elif sections:
                # Extra blank lines belong to the section before, as ManifestDigester counts them.
                sections[-1].raw += line
            current, attributes, last = [], {}, None
            continue
        if text.startswith(b" "):
            if last is None:
                raise IntegrityError(f"{what}: continuation line without an attribute")
            attributes[last] += decode(text[1:])
            continue
        name, sep, value = text.partition(b": ")
        if not sep:
            if text.endswith(b":"):
                name, value = text[:-1], b""
            else:
                raise IntegrityError(f"{what}: malformed line {text[:60]!r}")
        last = decode(name).upper()
        attributes[last] = decode(value)
    if current:
        sections.append(Section(b"".join(current), attributes))
    if not sections:
        raise IntegrityError(f"{what} is empty")
    named: dict[str, Section] = {}
    for section in sections[1:]:
        entry = section.attributes.get("NAME")
        if entry is None:
            raise IntegrityError(f"{what}: a section has no Name attribute")
        named[entry] = section
    return Manifest(sections[0], named)


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError(f"{what} is not UTF-8") from None


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value.replace(" ", ""), validate=True)
    except (binascii.Error, ValueError):
        return b"\x00"  # never equals a digest


def is_signing_related(name: str) -> bool:
    """java.util.jar's rule: the manifest, .SF, blocks and SIG-* files directly in META-INF."""
    upper = name.upper()
    if not upper.startswith("META-INF/"):
        return False
    rest = upper[len("META-INF/") :]
    if "/" in rest:
        return False
    return (
        rest == "MANIFEST.MF"
        or rest.endswith(".SF")
        or rest.endswith(_BLOCK_SUFFIXES)
        or rest.startswith("SIG-")
    )


class _Inflater:
    """The one reader of entry contents, holding the archive to its limits."""

    def __init__(self, zf: zipfile.ZipFile, limits: FileLimits) -> None:
        self.zf = zf
        self.limits = limits
        self.left = limits.max_decompressed

    def chunks(self, info: zipfile.ZipInfo, cap: int | None = None) -> Iterator[bytes]:
        """The entry's inflated bytes, a chunk at a time. zipfile trusts the declared size only to cut
        the output short (after inflating it all in one call, on a whole read), so everything is counted
        here as it comes out."""
        ratio_base = max(info.compress_size, 1) * self.limits.max_ratio
        out = 0
        try:
            with self.zf.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    out += len(chunk)
                    if cap is not None and out > cap:
                        raise TooLargeError(
                            f"{info.filename} inflates past {cap} bytes, too large for a signature file"
                        )
                    if out > RATIO_GRACE and out > ratio_base:
                        raise TooLargeError(
                            f"{info.filename} inflates to more than {self.limits.max_ratio} times its "
                            f"{info.compress_size} stored bytes (the max-ratio limit)"
                        )
                    self.left -= len(chunk)
                    if self.left < 0:
                        raise TooLargeError(
                            f"the archive inflates past {self.limits.max_decompressed} bytes "
                            "(the max-decompressed limit)"
                        )
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise IntegrityError(f"cannot read {info.filename}: {exc}") from None

    def read(self, info: zipfile.ZipInfo) -> bytes:
        return b"".join(self.chunks(info, MAX_META_SIZE))


@dataclass
class _Archive:
    zf: zipfile.ZipFile
    infos: dict[str, zipfile.ZipInfo]
    duplicates: list[str]
    inflater: _Inflater

    def read(self, name: str) -> bytes:
        info = self.infos[name]
        if info.file_size > MAX_META_SIZE:
            raise IntegrityError(f"{name} is implausibly large ({info.file_size} bytes)")
        return self.inflater.read(info)


def _declared_entries(handle: IO[bytes]) -> int | None:
    """The entry count the end record declares (None without one, or for ZIP64, left to zipfile).

    Read before zipfile parses the central directory: zipfile builds an object per directory entry
    (~0.5 KiB each) for as many as the directory's *size* holds, whatever count the end record gives, so
    the entries are counted here, and refused past MAX_ENTRIES, before it does. The count is compared
    with what zipfile parsed afterwards: zipfile stops quietly when a corrupt header length runs it past
    the directory's end, where java.util.zip refuses such a directory ("invalid CEN header"), as do we.
    """
    size = handle.seek(0, os.SEEK_END)
    start = max(0, size - apk.EOCD.size - 0xFFFF)
    handle.seek(start)
    tail = handle.read()
    at = tail.rfind(apk.EOCD_MAGIC)
    if at < 0 or len(tail) - at < apk.EOCD.size:
        return None
    _sig, _disk, _cd_disk, _here, total, cd_size, _offset, _comment = apk.EOCD.unpack_from(tail, at)
    if total == 0xFFFF or cd_size == 0xFFFFFFFF:
        return None
    if total > MAX_ENTRIES or cd_size > MAX_ENTRIES * 256:
        raise TooLargeError(f"the archive declares {total} entries, over the {MAX_ENTRIES}-entry limit")
    # The directory ends where the end record starts (data prepended to the archive shifts its offset).
    handle.seek(max(0, start + at - cd_size))
    directory = handle.read(cd_size)
    count = offset = 0
    while offset + 46 <= len(directory) and directory[offset : offset + 4] == b"PK\x01\x02":
        name, extra, comment = struct.unpack_from("<HHH", directory, offset + 28)
        offset += 46 + name + extra + comment
        count += 1
        if count > MAX_ENTRIES:
            raise TooLargeError(f"the archive holds over {MAX_ENTRIES} entries, the limit")
    return int(total)


class JarHandler:
    """JAR, WAR, EAR and v1-signed APK: any ZIP whose META-INF holds a signature file."""

    name = "jar"
    first_bytes = ZIP_MAGIC[:1]  # registry.Classifier

    def sniff(self, head: bytes, path: Path) -> bool:
        return head.startswith(ZIP_MAGIC)

    @pkcs7.guarded("signed archive")
    def inspect(self, path: Path, verify: bool, trust: FileTrust) -> Sequence[FileSignature]:
        now = trust.at or datetime.now(UTC)
        try:
            handle = open_regular(path, trust.boundary.chosen(), "archive")
        except OSError as exc:
            raise IntegrityError(f"cannot read {path}: {exc.strerror or exc}") from None
        with handle:
            try:
                declared = _declared_entries(handle)
                zf = zipfile.ZipFile(handle)
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as exc:
                raise IntegrityError(f"not a readable ZIP archive: {exc}") from None
            except OSError as exc:
                raise IntegrityError(f"cannot read {path}: {exc}") from None
            return self._inspect(zf, declared, verify, trust, now)

    def _inspect(
        self, zf: zipfile.ZipFile, declared: int | None, verify: bool, trust: FileTrust, now: datetime
    ) -> Sequence[FileSignature]:
        with zf:
            infos: dict[str, zipfile.ZipInfo] = {}
            duplicates: list[str] = []
            for info in zf.infolist():
                if info.filename in infos:
                    duplicates.append(info.filename)
                infos[info.filename] = info
            assert zf.fp is not None  # open until the `with` ends
            parsed = len(zf.infolist())
            if declared is not None and declared != parsed:
                raise IntegrityError(
                    f"invalid central directory: {declared} entries declared, {parsed} readable"
                )
            archive = _Archive(zf, infos, duplicates, _Inflater(zf, trust.limits))
            signature_files = sorted(
                n
                for n in infos
                if n.upper().startswith("META-INF/") and n.upper().endswith(".SF") and "/" not in n[9:]
            )
            # APK Signature Scheme v2/v3 signers follow the v1 ones (apk.py); the block is found from the
            # end record, so any ZIP carrying one is signed, whatever its name.
            block = apk.find_block(zf.fp)
            v2 = apk.inspect(zf.fp, block, verify, trust, now)
            if not signature_files:
                return v2
            manifest_name = next((n for n in infos if n.upper() == "META-INF/MANIFEST.MF"), None)
            manifest_raw = archive.read(manifest_name) if manifest_name else None
            v1 = [
                self._signer(archive, sf, manifest_raw, verify, trust, now, block) for sf in signature_files
            ]
            apk.match_signers(v1, v2, verify)
            return v1 + v2

    def _signer(
        self,
        archive: _Archive,
        sf_name: str,
        manifest_raw: bytes | None,
        verify: bool,
        trust: FileTrust,
        now: datetime,
        apk_block: apk.SigningBlock | None = None,
    ) -> FileSignature:
        stem = sf_name[:-3]
        block_name = next(
            (
                n
                for n in archive.infos
                if n.upper().startswith(stem.upper() + ".") and n.upper().endswith(_BLOCK_SUFFIXES)
            ),
            None,
        )
        sig = FileSignature(kind="jar", location=block_name or sf_name)
        sig.details["signatureFile"] = sf_name
        if block_name is None:
            sig.error = f"{sf_name} has no signature block ({stem}.RSA, .DSA or .EC)"
            return sig.settle()
        data: pkcs7.SignerData | None = None
        try:
            sf_raw = archive.read(sf_name)
            block = archive.read(block_name)
            if verify:
                data = pkcs7.load_signed_data(block, block_name)
                signer_cert, intermediates = data.signer_cert, data.intermediates
                signature_algorithm = pkcs7.signature_algorithm_name(
                    data.digest_algorithm, data.signer_info["signature_algorithm"].dump()
                )
                stamp = pkcs7.read_timestamp(data, now, verify=True, roots=trust.roots)
            else:  # a report: the same facts from the DER readers, nothing verified
                facts = pkcs7.report_signer(block, now, block_name)
                signer_cert, intermediates = facts.signer_cert, facts.intermediates
                signature_algorithm, stamp = facts.signature_algorithm, facts.timestamp
            sf = parse_manifest(sf_raw, sf_name)
        except TooLargeError:
            raise  # a limit: the whole file is one error row naming it
        except IntegrityError as exc:
            sig.error = exc.message
            return sig.settle()
        if signer_cert is not None:
            sig.signer = pkcs7.summarize(signer_cert, now)
        sig.chain = tuple(pkcs7.summarize(c, now) for c in intermediates)
        sig.details["signatureAlgorithm"] = signature_algorithm
        if stamp is not None:
            sig.timestamp = stamp.info
        algorithms = sorted(
            {alg or name for section in sf.sections.values() for name, alg, _ in section.digests("-DIGEST")}
        )
        sig.digest_algorithm = ",".join(algorithms)

        manifest: Manifest | None = None
        coverage: _Coverage | None = None
        try:
            if manifest_raw is None:
                raise IntegrityError("the archive has no META-INF/MANIFEST.MF")
            manifest = parse_manifest(manifest_raw)
            coverage = _coverage(sf, manifest, manifest_raw)
        except IntegrityError as exc:
            if not verify:
                sig.warnings.append(exc.message)
            else:
                sig.checks.append(Check.failed("digest", exc.message))
        if coverage is not None:
            unsigned = sorted(
                n
                for n, info in archive.infos.items()
                if not info.is_dir() and not is_signing_related(n) and _norm(n) not in coverage.signed
            )
            sig.details["signedEntries"] = len(coverage.signed)
            if unsigned:
                sig.details["unsignedEntries"] = unsigned
                sig.warnings.append(f"{len(unsigned)} entries are not covered by the signature")
            present = {_norm(n) for n in archive.infos}
            missing = sorted(n for n in coverage.signed if n not in present and not n.endswith("/"))
            if missing:
                # java.util.jar verifies the entries that are there; removing signed ones goes unnoticed
                # by jarsigner, so it is no failure here either, but a scan says so.
                sig.details["missingEntries"] = missing
                sig.warnings.append(f"{len(missing)} signed entries are missing from the archive")
        stripping = apk.stripped(sf.main.attributes.get("X-ANDROID-APK-SIGNED"), apk_block, sf_name)
        if data is None:
            if stripping:
                sig.warnings.append(stripping)
            return sig.settle()

        sig.checks.append(pkcs7.verify_signer(data, sf_raw))
        if stripping:
            sig.checks.append(Check.failed("stripping", stripping))
        if coverage is not None and manifest is not None:
            sig.checks.append(_entries_check(archive, manifest, coverage))
            unsigned = sig.details.get("unsignedEntries", [])
            if unsigned:
                shown = ", ".join(unsigned[:5]) + (
                    f" and {len(unsigned) - 5} more" if len(unsigned) > 5 else ""
                )
                sig.checks.append(Check.failed("unsigned-entries", f"not covered by the signature: {shown}"))
            else:
                sig.checks.append(Check.passed("unsigned-entries", "every entry is signed"))
        if archive.duplicates:
            sig.checks.append(
                Check.failed("digest", f"duplicate entry names: {', '.join(archive.duplicates[:5])}")
            )
        sig.checks.append(pkcs7.timestamp_check(stamp, sig.warnings))
        at = stamp.info.time if stamp is not None and stamp.valid and stamp.info.time else now
        stamped = stamp.info.time if stamp is not None and stamp.valid else None
        sig.checks.append(_algorithm_check(sf, data.digest_algorithm, stamped))
        if data.signer_cert is None:
            sig.checks.append(Check.failed("trusted-chain", "no signing certificate"))
        else:
            pkcs7.record_chain(
                sig,
                *pkcs7.chain_check(
                    data.signer_cert, data.intermediates, trust.roots, at, pkcs7.jar_eku(data.signer_cert)
                ),
            )
        return sig.settle()


def _norm(name: str) -> str:
    return name[2:] if name.startswith("./") else name


@dataclass
class _Coverage:
    signed: set[str]  # entry names this signer's .SF covers
    whole_manifest: bool


def _coverage(sf: Manifest, manifest: Manifest, manifest_raw: bytes) -> _Coverage:
    """Which entries the .SF signs, by way of the manifest (SignatureFileVerifier.processImpl)."""
    whole = False
    for _name, alg, value in sf.main.digests("-DIGEST-MANIFEST"):
        if alg and hashlib.new(alg, manifest_raw).digest() == _b64(value):
            whole = True
    if not whole:
        for name, alg, value in sf.main.digests("-DIGEST-MANIFEST-MAIN-ATTRIBUTES"):
            if alg and hashlib.new(alg, manifest.main.raw).digest() != _b64(value):
                raise IntegrityError(
                    f"invalid {name[: -len('-MANIFEST-MAIN-ATTRIBUTES')]} for the manifest main attributes"
                )
    signed: set[str] = set()
    for name, section in sf.sections.items():
        if not whole:
            entry = manifest.sections.get(name)
            if entry is None:
                raise IntegrityError(f"no manifest section for signature file entry {name}")
            verified = False
            for attribute, alg, value in section.digests("-DIGEST"):
                if not alg:
                    continue
                expected = _b64(value)
                # java.util.jar also accepts the digest of the section without its closing blank line,
                # a bug of old signers it works around.
                if expected not in (
                    hashlib.new(alg, entry.raw).digest(),
                    hashlib.new(alg, _strip_blank(entry.raw)).digest(),
                ):
                    raise IntegrityError(f"invalid {attribute[:-7]} signature file digest for {name}")
                verified = True
            if not verified:
                continue
        signed.add(_norm(name))
    return _Coverage(signed, whole)


def _strip_blank(raw: bytes) -> bytes:
    for end in (b"\r\n", b"\n", b"\r"):
        if raw.endswith(end):
            return raw[: -len(end)]
    return raw


def _entries_check(archive: _Archive, manifest: Manifest, coverage: _Coverage) -> Check:
    """Each signed entry's bytes against its manifest digest (JarVerifier's per-entry check)."""
    checked = 0
    for name, info in archive.infos.items():
        if info.is_dir() or is_signing_related(name) or _norm(name) not in coverage.signed:
            continue
        section = manifest.sections.get(name) or manifest.sections.get(_norm(name))
        if section is None:
            return Check.failed("digest", f"{name} has no manifest section")
        wanted = [(attr, alg, value) for attr, alg, value in section.digests("-DIGEST") if alg]
        if not wanted:
            return Check.failed("digest", f"{name} has no supported digest in the manifest")
        hashers = {alg: hashlib.new(alg) for _, alg, _ in wanted}
        try:
            for chunk in archive.inflater.chunks(info):
                for hasher in hashers.values():
                    hasher.update(chunk)
        except TooLargeError:
            raise  # a limit: the whole file is one error row naming it
        except IntegrityError as exc:
            return Check.failed("digest", exc.message)
        for attribute, alg, value in wanted:
            if hashers[alg].digest() != _b64(value):
                return Check.failed("digest", f"{attribute[:-7]} digest error for {name}")
        checked += 1
    how = "whole manifest" if coverage.whole_manifest else "manifest sections"
    return Check.passed("digest", f"{checked} entries match the manifest; the .SF covers the {how}")


def _algorithm_check(sf: Manifest, block_digest: str, stamped: datetime | None) -> Check:
    """JDK 17 treats a JAR whose digests are all SHA-1 (or MD5), or whose block signs with SHA-1, as
    unsigned, unless a valid timestamp puts the signature before 2019."""
    named = [(a, alg) for s in sf.sections.values() for a, alg, _ in s.digests("-DIGEST")]
    named += [(a, alg) for a, alg, _ in sf.main.digests("-DIGEST-MANIFEST")]
    used = {alg for _, alg in named if alg}
    if not used and any(a.split("-DIGEST")[0].replace("-", "") in _DISABLED for a, _ in named):
        return Check.failed("algorithm", "signed with MD5, which is disabled")
    if (used and used <= {"sha1"}) or block_digest == "sha1":
        if stamped is not None and stamped < _SHA1_DEADLINE:
            return Check.passed("algorithm", "SHA-1, accepted for a signature timestamped before 2019")
        return Check.failed(
            "algorithm", "signed with SHA-1, disabled since 2019 (jarsigner treats the jar as unsigned)"
        )
    return Check.passed("algorithm", ", ".join(sorted(used | {block_digest})))


HANDLERS: list[FileHandler] = [JarHandler()]
