"""Authenticode signature blocks in PowerShell scripts, modules, data files and XML type/format files.

The block is a run of comment lines at the end of the file (`# SIG # Begin signature block` … `# SIG # End
signature block`; `<!-- … -->` comments in `.ps1xml`) holding a base64 PKCS#7 SignedData whose content is
an Authenticode SpcIndirectDataContent: the PowerShell SIP's GUID and a digest of the script text.

The digest covers the text before the line ending that precedes the block, as UTF-16LE: a UTF-8 file is
converted (a UTF-8 BOM becomes U+FEFF), a UTF-16LE file (BOM FF FE) is hashed as it stands. This is the
PowerShell SIP's behaviour as osslsigncode implements it (script.c), interoperable with signtool.

Without `--verify` only the file's tail is read (the block is at the end); verifying reads it whole.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import algos, core

from sigscope.errors import IntegrityError
from sigscope.files import pkcs7
from sigscope.files.base import FileHandler, FileSignature, FileTrust
from sigscope.model import Check
from sigscope.trust import certs
from sigscope.trust.chain import CODE_SIGNING

SUFFIXES = {".ps1": "#", ".psm1": "#", ".psd1": "#", ".ps1xml": "<!--", ".psc1": "<!--", ".cdxml": "<!--"}
HEADER = "SIG # Begin signature block"
FOOTER = "SIG # End signature block"
SPC_SIPINFO = "1.3.6.1.4.1.311.2.1.30"
POWERSHELL_SIP = bytes.fromhex("1fcc3b60594b084eb724d2c6297ef351")
TAIL_SIZE = 256 * 1024  # a block with a chain and a timestamp is ~10 KiB (twice that in UTF-16)
MAX_SCRIPT = 256 * 1024 * 1024
UTF16_BOM = b"\xff\xfe"


class _AttributeTypeAndValue(core.Sequence):  # type: ignore[misc]
    _fields = [("type", core.ObjectIdentifier), ("value", core.Any, {"optional": True})]  # noqa: RUF012


class _DigestInfo(core.Sequence):  # type: ignore[misc]
    _fields = [("digest_algorithm", algos.DigestAlgorithm), ("digest", core.OctetString)]  # noqa: RUF012


class SpcIndirectDataContent(core.Sequence):  # type: ignore[misc]
    _fields = [("data", _AttributeTypeAndValue), ("message_digest", _DigestInfo)]  # noqa: RUF012


class _SpcSipInfo(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("version", core.Integer),
        ("uuid", core.OctetString),
        ("reserved1", core.Integer),
        ("reserved2", core.Integer),
        ("reserved3", core.Integer),
        ("reserved4", core.Integer),
        ("reserved5", core.Integer),
    ]


def _comment(path: Path) -> tuple[str, str]:
    opener = SUFFIXES.get(path.suffix.lower(), "#")
    return (opener + " ", "") if opener == "#" else ("<!-- ", " -->")


def _looks_like_text(head: bytes) -> bool:
    if head.startswith(UTF16_BOM):
        return True
    if head.startswith(b"\xfe\xff"):
        return False  # UTF-16BE: neither PowerShell's signer nor its SIP writes it
    return b"\x00" not in head


def _decode(raw: bytes) -> str:
    if raw.startswith(UTF16_BOM):
        if len(raw) % 2:
            raise IntegrityError("UTF-16 script has an odd number of bytes (truncated?)")
        return raw.decode("utf-16-le", errors="replace")
    return raw.decode("utf-8", errors="replace")


def split_block(text: str, path: Path) -> tuple[str, str, str] | None:
    """(signed text, base64 of the block, text after the block), or None when there is no block.

    Mirrors osslsigncode's search: the first line (not the file's first) that starts with the commented
    header; the signed text ends before the line ending that precedes it.
    """
    opener, closer = _comment(path)
    marker = opener + HEADER + closer
    found = text.find("\n" + marker)
    if found < 0:
        return None
    line_end = text.find("\n", found + 1)
    line = text[found + 1 : line_end if line_end >= 0 else len(text)]
    end = found - 1 if line.endswith("\r") else found
    signed = text[: max(end, 0)]
    body: list[str] = []
    lines = text[found + 1 :].split("\n")[1:]
    for index, raw_line in enumerate(lines):
        entry = raw_line.rstrip("\r")
        if not entry:
            continue
        if not entry.startswith(opener) or (closer and not entry.endswith(closer)):
            raise IntegrityError("signature block has a line that is not a signature comment")
        content = entry[len(opener) : len(entry) - len(closer)]
        if content == FOOTER:
            return signed, "".join(body), "\n".join(lines[index + 1 :])
        body.append(content)
    raise IntegrityError("signature block has no end line (truncated?)")


class PowerShellHandler:
    """`.ps1`, `.psm1`, `.psd1`, `.ps1xml` (and `.psc1`, `.cdxml`), UTF-8 or UTF-16LE."""

    name = "powershell"
    suffixes = tuple(SUFFIXES)  # registry.Classifier: only these names are ever sniffed

    def sniff(self, head: bytes, path: Path) -> bool:
        return path.suffix.lower() in SUFFIXES and _looks_like_text(head)

    @pkcs7.guarded("PowerShell signature")
    def inspect(self, path: Path, verify: bool, trust: FileTrust) -> Sequence[FileSignature]:
        now = trust.at or datetime.now(UTC)
        raw, complete = _read(path, whole=verify)
        text = _decode(raw)
        if not complete and not _ends_with_footer(text):
            return []  # no block at the end: unsigned, and the rest of the file is never read
        found = split_block(text, path)
        if found is None and not complete:
            found = split_block(_decode(_read(path, whole=True)[0]), path)
        if found is None:
            return []
        signed_text, block, trailing = found
        appended = bool(trailing.strip(" \t\r\n\x00"))
        sig = FileSignature(kind="powershell", location="signature block")
        sig.details["encoding"] = "utf-16-le" if raw.startswith(UTF16_BOM) else "utf-8"
        try:
            der = base64.b64decode(block, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise IntegrityError(f"signature block is not base64: {exc}") from None
        data: pkcs7.SignerData | None = None
        if verify:
            data = pkcs7.load_signed_data(der, "PowerShell signature block")
            content_type, content_der = data.content_type, data.content_der
            signer_cert, intermediates = data.signer_cert, data.intermediates
            claimed_time = pkcs7.signing_time(data)
            stamp = pkcs7.read_timestamp(data, now, verify=True, roots=trust.roots)
        else:  # a report: the same facts from the DER readers, nothing verified
            facts = pkcs7.report_signer(der, now, "PowerShell signature block")
            content_type = facts.content_type
            content_der = facts.content.der if facts.content is not None else None
            signer_cert, intermediates = facts.signer_cert, facts.intermediates
            claimed_time, stamp = facts.signing_time, facts.timestamp
        if content_type != pkcs7.OID_SPC_INDIRECT_DATA or content_der is None:
            raise IntegrityError("signature block is not Authenticode (no SpcIndirectDataContent)")
        try:
            indirect = SpcIndirectDataContent.load(content_der, strict=True)
            algorithm = str(indirect["message_digest"]["digest_algorithm"]["algorithm"].native)
            claimed = bytes(indirect["message_digest"]["digest"].native)
            sip_type = indirect["data"]["type"].dotted
            sip_uuid = b""
            if sip_type == SPC_SIPINFO:
                sip_uuid = bytes(_SpcSipInfo.load(indirect["data"]["value"].dump())["uuid"].native)
        except pkcs7.PARSE_ERRORS as exc:
            raise IntegrityError(f"malformed SpcIndirectDataContent: {exc}") from None
        sig.digest_algorithm = algorithm
        if signer_cert is not None:
            sig.signer = certs.summarize(signer_cert, now)
        sig.chain = tuple(certs.summarize(c, now) for c in intermediates)
        if claimed_time is not None:
            sig.details["signingTime"] = claimed_time.isoformat()
        if stamp is not None:
            sig.timestamp = stamp.info
        if sip_uuid != POWERSHELL_SIP:
            sig.warnings.append("the signature names another SIP than PowerShell's")
        if appended:
            sig.warnings.append("text follows the signature block; it is not covered by the signature")
        if data is None:
            return [sig.settle()]

        if appended:
            # osslsigncode's digest stops at the block and ignores what follows; PowerShell runs it.
            sig.checks.append(Check.failed("digest", "text after the signature block is not signed"))
        try:
            actual = pkcs7.digest(algorithm, signed_text.encode("utf-16-le", errors="surrogatepass"))
        except IntegrityError as exc:
            sig.checks.append(Check.failed("digest", exc.message))
        else:
            if actual == claimed:
                sig.checks.append(Check.passed("digest", f"{algorithm} of the script text matches"))
            else:
                sig.checks.append(Check.failed("digest", "the script text does not match the signed digest"))
        sig.checks.append(pkcs7.verify_signer(data, data.content or b""))
        sig.checks.append(pkcs7.timestamp_check(stamp, sig.warnings))
        at = stamp.info.time if stamp is not None and stamp.valid and stamp.info.time else now
        if data.signer_cert is None:
            sig.checks.append(Check.failed("trusted-chain", "no signing certificate"))
        else:
            pkcs7.record_chain(
                sig,
                *pkcs7.chain_check(data.signer_cert, data.intermediates, trust.roots, at, (CODE_SIGNING,)),
            )
        return [sig.settle()]


def _ends_with_footer(text: str) -> bool:
    end = text.rstrip("\r\n\x00 ")
    return end.endswith(FOOTER) or end.endswith(FOOTER + " -->")


def _read(path: Path, whole: bool) -> tuple[bytes, bool]:
    """(bytes, complete): the file, or its tail (from an even offset, for UTF-16, with the BOM kept so
    it decodes in the file's encoding) when the whole is not needed."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_SCRIPT:
                raise IntegrityError(f"script is implausibly large ({size} bytes)")
            if whole or size <= TAIL_SIZE:
                return handle.read(), True
            head = handle.read(2)
            start = size - TAIL_SIZE
            handle.seek(start - start % 2)
            tail = handle.read()
    except OSError as exc:
        raise IntegrityError(f"cannot read {path}: {exc}") from None
    return (head + tail if head == UTF16_BOM else tail), False


HANDLERS: list[FileHandler] = [PowerShellHandler()]
