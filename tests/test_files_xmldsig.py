"""Enveloped XML-DSig signatures, against xmlsec1 (which made the fixtures)."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from testbed import absent
from testbed.file_fixtures import FIXTURES, PKI, SUBJECT, TRUST, bit_flips, inspect_mangled, only_signature
from testbed.file_fixtures import check_outcome as check

from sigscope.errors import SigscopeError
from sigscope.files import xmldsig
from sigscope.files.base import HEAD_SIZE, FileSignature, FileTrust
from sigscope.model import Outcome, Status

DOCS = FIXTURES / "xml"
HANDLER = xmldsig.HANDLERS[0]


def only(path: Path, verify: bool = True, trust: FileTrust = TRUST) -> FileSignature:
    return only_signature(HANDLER, path, verify, trust)


EXPECTED = {
    "signed-rsa.xml": (Status.VERIFIED, "RSA Code Signer", None),
    "signed-ec.xml": (Status.VERIFIED, "EC Code Signer", None),
    "signed-expired.xml": (Status.UNTRUSTED, "Expired Code Signer", "not valid at that time"),
    "signed-self.xml": (Status.UNTRUSTED, "Self-Signed Code Signer", "no path to a trusted root"),
    "tampered.xml": (Status.INVALID, "RSA Code Signer", "digest: Digest mismatch"),
    "tampered-signature.xml": (Status.INVALID, "RSA Code Signer", "signature: "),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_verdicts(name: str) -> None:
    status, cn, reason = EXPECTED[name]
    sig = only(DOCS / name)
    assert sig.kind == "xmldsig"
    assert sig.status is status, sig.to_json()
    assert sig.signer is not None and sig.signer.subject == SUBJECT.format(cn)
    assert sig.location == "/Invoice/Signature"
    assert sig.digest_algorithm == "sha256"
    assert sig.details["references"] == [""] and sig.details["enveloped"] is True
    if reason is None:
        assert check(sig, "digest") is Outcome.PASSED and check(sig, "signature") is Outcome.PASSED
    else:
        assert reason in sig.reason, sig.reason


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_agrees_with_xmlsec1(name: str) -> None:
    if shutil.which("xmlsec1") is None:
        absent.unavailable("xmlsec1 not installed (apt-get install -y xmlsec1)")
    done = subprocess.run(
        ["xmlsec1", "--verify", "--trusted-pem", str(PKI / "root.crt"), str(DOCS / name)],
        capture_output=True,
        text=True,
    )
    assert (done.returncode == 0) == (only(DOCS / name).status is Status.VERIFIED), done.stderr


def test_tampered_signature_value_leaves_digest_unchecked() -> None:
    sig = only(DOCS / "tampered-signature.xml")
    assert check(sig, "signature") is Outcome.FAILED
    assert check(sig, "digest") is Outcome.SKIPPED
    content = only(DOCS / "tampered.xml")
    assert check(content, "signature") is Outcome.PASSED and check(content, "digest") is Outcome.FAILED


def test_identity_without_verify_and_flags() -> None:
    sig = only(DOCS / "tampered.xml", verify=False)
    assert sig.status is Status.UNVERIFIED and not sig.checks
    assert sig.details["signatureMethod"].endswith("rsa-sha256")
    selfsig = only(DOCS / "signed-self.xml", verify=False).signer
    assert selfsig is not None and selfsig.self_signed
    expired = only(DOCS / "signed-expired.xml", verify=False).signer
    assert expired is not None and expired.expired


def test_no_roots_never_verifies() -> None:
    sig = only(DOCS / "signed-rsa.xml", trust=FileTrust())
    assert sig.status is Status.UNTRUSTED and check(sig, "trusted-chain") is Outcome.FAILED


def test_unsigned_and_sniff(tmp_path: Path) -> None:
    assert list(HANDLER.inspect(DOCS / "unsigned.xml", True, TRUST)) == []
    assert HANDLER.sniff((DOCS / "signed-rsa.xml").read_bytes()[:HEAD_SIZE], Path("a.xml"))
    assert not HANDLER.sniff((DOCS / "unsigned.xml").read_bytes(), Path("a.xml"))
    assert not HANDLER.sniff(b"PK\x03\x04", Path("a.xml"))
    # binary data that happens to start like XML (1 file in ~200 of random bytes does)
    binary = b"<" + random.Random(4).randbytes(HEAD_SIZE - 1)
    assert b"\0" in binary and not HANDLER.sniff(binary, Path("data.bin"))
    assert not HANDLER.sniff(b" \r\n<a>\0</a>", Path("a.xml"))
    # A big document whose signature is past the head: sniff defers, inspect finds it.
    big = tmp_path / "big.xml"
    signed = (DOCS / "signed-rsa.xml").read_bytes()
    # a comment before the root element: outside what c14n (without comments) signs
    padded = signed.replace(b"?>\n", b"?>\n<!--" + b"p" * (2 * HEAD_SIZE) + b"-->\n", 1)
    big.write_bytes(padded)
    assert HANDLER.sniff(padded[:HEAD_SIZE], big)
    assert only(big).status is Status.VERIFIED
    unsigned_big = tmp_path / "unsigned-big.xml"
    unsigned_big.write_bytes(b"<a>" + b"x" * (3 * HEAD_SIZE) + b"</a>")
    assert list(HANDLER.inspect(unsigned_big, True, TRUST)) == []


def _xmlsign(template: str, tmp_path: Path, entity: str = "rsa-signer") -> Path:
    source = tmp_path / "template.xml"
    source.write_text(template)
    out = tmp_path / "signed.xml"
    key = f"{PKI / f'{entity}.key'},{PKI / f'{entity}.crt'}"
    subprocess.run(
        [
            "xmlsec1",
            "--sign",
            "--privkey-pem",
            key,
            "--id-attr:Id",
            "Part",
            "--output",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return out


PARTIAL = """<?xml version="1.0"?>
<Doc><Part Id="p1">signed part</Part><Other>not signed</Other>
<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>
<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
<Reference URI="#p1"><Transforms><Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></Transforms>
<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue/></Reference>
</SignedInfo><SignatureValue/><KeyInfo><X509Data/></KeyInfo></Signature></Doc>
"""


def test_partial_signature_is_reported(tmp_path: Path) -> None:
    """xmlsec1 signing one element: the signature holds, but the file is not what was signed."""
    if shutil.which("xmlsec1") is None:
        absent.unavailable("xmlsec1 not installed")
    signed = _xmlsign(PARTIAL, tmp_path)
    sig = only(signed)
    assert sig.details["references"] == ["#p1"]
    assert "the signature does not cover the whole document" in sig.warnings
    # signxml resolves Id references by its default id attributes ("Id" included)
    assert check(sig, "signature") is Outcome.PASSED and check(sig, "digest") is Outcome.PASSED
    assert check(sig, "coverage") is Outcome.FAILED and sig.status is Status.INVALID
    assert "covers only '#p1'" in sig.reason
    assert check(only(DOCS / "signed-rsa.xml"), "coverage") is Outcome.PASSED


def _blank_signature(signed: str) -> str:
    """The ds:Signature of a signed invoice with its values emptied again: a template for xmlsec1."""
    block = signed[signed.index("  <Signature") : signed.index("</Invoice>")]
    for element in ("DigestValue", "SignatureValue", "X509Data"):
        block = re.sub(f"<{element}>.*?</{element}>", f"<{element}/>", block, flags=re.S)
    return block


def _nth(index: int) -> str:
    return f"(//*[local-name()='Signature'])[{index + 1}]"


def test_every_signature_is_verified_as_xmlsec1_does(tmp_path: Path) -> None:
    """A second whole-document signature added to an EC-signed invoice: it covers the first, which
    (an enveloped transform removing only its own element) no longer holds. Each is judged by itself."""
    if shutil.which("xmlsec1") is None:
        absent.unavailable("xmlsec1 not installed (apt-get install -y xmlsec1)")
    template = tmp_path / "template.xml"
    second = _blank_signature((DOCS / "signed-rsa.xml").read_text())
    template.write_text((DOCS / "signed-ec.xml").read_text().replace("</Invoice>", second + "</Invoice>"))
    two = tmp_path / "two.xml"
    key = f"{PKI / 'rsa-signer.key'},{PKI / 'rsa-signer.crt'}"
    subprocess.run(
        [
            "xmlsec1",
            "--sign",
            "--privkey-pem",
            key,
            "--node-xpath",
            _nth(1),
            "--output",
            str(two),
            str(template),
        ],
        check=True,
        capture_output=True,
    )

    def verdicts(path: Path) -> list[tuple[str, Status, str]]:
        return [(s.location, s.status, s.reason or "") for s in HANDLER.inspect(path, True, TRUST)]

    def xmlsec1_accepts(path: Path, index: int) -> bool:
        done = subprocess.run(
            [
                "xmlsec1",
                "--verify",
                "--trusted-pem",
                str(PKI / "root.crt"),
                "--node-xpath",
                _nth(index),
                str(path),
            ],
            capture_output=True,
        )
        return done.returncode == 0

    [(first_at, first, why), (second_at, second, _)] = verdicts(two)
    assert (first_at, second_at) == ("/Invoice/Signature[1]", "/Invoice/Signature[2]")
    assert first is Status.INVALID and "digest: Digest mismatch" in why
    assert second is Status.VERIFIED
    assert [xmlsec1_accepts(two, i) for i in (0, 1)] == [False, True]
    signers = [s.signer.subject if s.signer else None for s in HANDLER.inspect(two, True, TRUST)]
    assert signers == [SUBJECT.format("EC Code Signer"), SUBJECT.format("RSA Code Signer")]

    # the second SignatureValue broken: neither holds
    text = two.read_text()
    value = text.rindex("<SignatureValue>") + len("<SignatureValue>") + 8
    broken = tmp_path / "broken.xml"
    broken.write_text(text[:value] + ("A" if text[value] != "A" else "B") + text[value + 1 :])
    assert [v[1] for v in verdicts(broken)] == [Status.INVALID, Status.INVALID]
    assert "signature: " in verdicts(broken)[1][2] and not xmlsec1_accepts(broken, 1)

    # the second signature presenting the first one's certificate: its own key is what it is checked with
    first_cert = text[text.index("<X509Certificate>") : text.index("</X509Certificate>")]
    last = text.rindex("<X509Certificate>")
    swapped = tmp_path / "swapped.xml"
    swapped.write_text(text[:last] + first_cert + text[text.index("</X509Certificate>", last) :])
    [_, (_, status, why)] = verdicts(swapped)
    assert status is Status.INVALID and why.startswith("signature: ")


def test_external_entities_are_not_resolved(tmp_path: Path) -> None:
    signed = (DOCS / "signed-rsa.xml").read_text()
    hostile = signed.replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0"?><!DOCTYPE Invoice [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    ).replace("2026-0042", "&x;")
    path = tmp_path / "xxe.xml"
    path.write_text(hostile)
    try:
        result = HANDLER.inspect(path, True, TRUST)
    except SigscopeError:
        return
    assert all(s.status is not Status.VERIFIED for s in result)


SIGNED = ["signed-rsa.xml", "signed-ec.xml"]


@pytest.mark.parametrize("name", SIGNED)
def test_truncated_and_bit_flipped_never_crash(name: str, tmp_path: Path) -> None:
    data = (DOCS / name).read_bytes()
    target = tmp_path / name
    rng = random.Random(name)
    variants = [data[:cut] for cut in sorted({1, 5, 40, len(data) // 2, len(data) - 100, len(data) - 2})]

    def still_verified(variant: bytes, _sig: FileSignature) -> None:
        # c14n forgives some changes (whitespace in the XML declaration, base64 line breaks
        # in the certificate); the signed content itself must read the same.
        assert b"1250.00" in variant and b"2026-0042" in variant

    inspect_mangled(HANDLER, target, variants + bit_flips(data, rng), still_verified)
