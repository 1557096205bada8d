"""XML-DSig signatures (enveloped, as xmlsec1, Java's XMLSignature and .NET's SignedXml make them).

The signer is the certificate in the signature's `KeyInfo/X509Data` (the one no other listed certificate
was issued by). signxml verifies: the SignatureValue over the canonical SignedInfo under that
certificate's key, then every Reference's digest over the transformed content; we then validate the
chain to the user's roots ourselves (signxml's own chain check would use its own EKU policy).
HMAC signature methods are refused: a shared-secret "signature" names no signer.

A signature whose References do not cover the whole document (URI "" or the root's Id) signs only a
part of it: with `--verify` its `coverage` check fails (the file is not what was signed), without it a
warning says so; `details.references` lists every Reference URI.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from sigscope.errors import IntegrityError
from sigscope.files import pkcs7
from sigscope.files.base import HEAD_SIZE, FileHandler, FileSignature, FileTrust
from sigscope.model import Check
from sigscope.trust import certs

DS = "http://www.w3.org/2000/09/xmldsig#"
DS_BYTES = DS.encode()
MAX_XML = 64 * 1024 * 1024
_SCAN_CHUNK = 1 << 20


_XML_LEADING = b"<\xef\xbb\xbf \t\r\n"


def _xml_like(head: bytes) -> bool:
    if head[:1] == b"<":
        return True  # the common case, without copying the head to strip it
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"<")


def _mentions_dsig(path: Path) -> bool:
    """Stream the file for the XML-DSig namespace without parsing it (big XML files are mostly unsigned)."""
    overlap = len(DS_BYTES)
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(_SCAN_CHUNK):
            if DS_BYTES in tail + chunk:
                return True
            tail = chunk[-overlap:]
    return False


class XmlDsigHandler:
    """XML documents carrying a `ds:Signature`."""

    name = "xml"
    first_bytes = _XML_LEADING  # registry.Classifier: what _xml_like can accept first

    def sniff(self, head: bytes, path: Path) -> bool:
        if not _xml_like(head) or b"\0" in head:
            # XML in UTF-8 never holds a NUL (and UTF-16 is not _xml_like): binary data that
            # happens to start with "<" is nobody's, not an unsigned document.
            return False
        # A small file is all in `head`; a big one may carry its signature at the end: inspect decides.
        return DS_BYTES in head or len(head) >= HEAD_SIZE

    @pkcs7.guarded("XML signature")
    def inspect(self, path: Path, verify: bool, trust: FileTrust) -> Sequence[FileSignature]:
        from lxml import etree

        now = trust.at or datetime.now(UTC)
        try:
            size = path.stat().st_size
            if size > MAX_XML:
                raise IntegrityError(f"XML document is implausibly large ({size} bytes)")
            if not _mentions_dsig(path):
                return []
            raw = path.read_bytes()
        except OSError as exc:
            raise IntegrityError(f"cannot read {path}: {exc}") from None
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        try:
            root = etree.fromstring(raw, parser)
        except (etree.XMLSyntaxError, ValueError) as exc:
            raise IntegrityError(f"not well-formed XML: {exc}") from None
        if root is None:
            raise IntegrityError("not well-formed XML: empty document")
        tree = root.getroottree()
        elements = list(root.iter(f"{{{DS}}}Signature"))
        results = []
        for index, element in enumerate(elements):
            sig = self._describe(element, root, tree, now)
            if verify:
                self._verify(sig, raw, element, index, trust, now)
            results.append(sig.settle())
        return results

    def _describe(self, element: Any, root: Any, tree: Any, now: datetime) -> FileSignature:
        sig = FileSignature(kind="xmldsig", location=_path(element))
        method = element.find(f"{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod")
        if method is not None:
            sig.details["signatureMethod"] = method.get("Algorithm", "")
        references = element.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
        uris = [ref.get("URI", "") for ref in references]
        sig.details["references"] = uris
        digests = []
        for ref in references:
            digest_method = ref.find(f"{{{DS}}}DigestMethod")
            if digest_method is not None:
                digests.append(digest_method.get("Algorithm", "").rpartition("#")[2])
        sig.digest_algorithm = ",".join(sorted(set(digests)))
        enveloped = any(
            t.get("Algorithm") == DS + "enveloped-signature"
            for t in element.iterfind(
                f"{{{DS}}}SignedInfo/{{{DS}}}Reference/{{{DS}}}Transforms/{{{DS}}}Transform"
            )
        )
        sig.details["enveloped"] = enveloped
        root_ids = {root.get(a) for a in ("Id", "ID", "id") if root.get(a)}
        sig.details["wholeDocument"] = any(u == "" or (u.startswith("#") and u[1:] in root_ids) for u in uris)
        if not sig.details["wholeDocument"]:
            sig.warnings.append("the signature does not cover the whole document")
        try:
            chain = self._certificates(element)
        except IntegrityError as exc:
            sig.error = exc.message
            return sig
        if chain:
            leaf = chain[0]
            sig.signer = certs.summarize(leaf, now)
            sig.chain = tuple(certs.summarize(c, now) for c in chain[1:])
        else:
            sig.warnings.append("KeyInfo carries no X.509 certificate: the signer cannot be named")
        return sig

    @staticmethod
    def _certificates(element: Any) -> list[x509.Certificate]:
        """KeyInfo's certificates, the signer first."""
        found: list[x509.Certificate] = []
        for node in element.iterfind(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"):
            text = "".join((node.text or "").split())
            try:
                found.append(x509.load_der_x509_certificate(base64.b64decode(text, validate=True)))
            except (binascii.Error, ValueError) as exc:
                raise IntegrityError(f"KeyInfo holds a malformed certificate: {exc}") from None
        leaves = [c for c in found if not any(o is not c and certs.issued_by(o, c) for o in found)]
        leaf = leaves[0] if leaves else (found[0] if found else None)
        return [leaf, *[c for c in found if c is not leaf]] if leaf is not None else []

    def _verify(
        self, sig: FileSignature, raw: bytes, element: Any, index: int, trust: FileTrust, now: datetime
    ) -> None:
        if sig.error:
            return
        chain = self._certificates(element)
        if not chain:
            sig.checks.append(Check.failed("signature", "no certificate in KeyInfo to verify with"))
            return
        references = len(element.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference"))
        signature, digest = _signxml_verify(raw, chain[0], references, index)
        sig.checks.append(signature)
        sig.checks.append(digest)
        if sig.details["wholeDocument"]:
            sig.checks.append(Check.passed("coverage", "a reference covers the whole document"))
        else:
            # A valid signature over one element says nothing about the rest of the file: the file is
            # not what was signed (the signature-wrapping family of attacks lives in that gap).
            uris = ", ".join(repr(u) for u in sig.details["references"])
            sig.checks.append(Check.failed("coverage", f"the signature covers only {uris}, not the document"))
        sig.checks.append(Check.skipped("timestamp", "XML-DSig carries no timestamp; validity judged now"))
        leaf = chain[0]
        pkcs7.record_chain(sig, *pkcs7.chain_check(leaf, chain[1:], trust.roots, now, pkcs7.jar_eku(leaf)))


def _path(element: Any) -> str:
    """/Invoice/Signature[2]: local names, with a position where siblings share the name."""
    from lxml import etree

    steps = []
    while element is not None:
        name = etree.QName(element).localname
        parent = element.getparent()
        if parent is not None:
            same = [e for e in parent if isinstance(e.tag, str) and e.tag == element.tag]
            if len(same) > 1:
                name += f"[{same.index(element) + 1}]"
        steps.append(name)
        element = parent
    return "/" + "/".join(reversed(steps))


@functools.cache
def _verifier_class() -> type[Any]:
    """signxml's verifier, made to verify the document's index-th ds:Signature (document order, as
    inspect counts them) instead of the first it finds. Its signature lookup is a private method, so
    a signxml without one leaves the verifier as it is, and _signxml_verify skips all but the first."""
    from signxml.verifier import XMLVerifier

    if not callable(getattr(XMLVerifier, "_get_signature", None)):
        return XMLVerifier

    class NthSignatureVerifier(XMLVerifier):
        index = 0

        def _get_signature(self, root: Any) -> Any:
            # Called on the document and again on each copy signxml makes of it to resolve a Reference:
            # the same position names the same element in both.
            return list(root.iter(f"{{{DS}}}Signature"))[self.index]

    return NthSignatureVerifier


def _signxml_verify(
    raw: bytes, leaf: x509.Certificate, references: int, index: int = 0
) -> tuple[Check, Check]:
    """(signature, digest) checks of the document's index-th signature. signxml checks the
    SignatureValue before the References."""
    from lxml import etree
    from signxml.algorithms import SignatureMethod
    from signxml.exceptions import InvalidDigest, InvalidInput, InvalidSignature, SignXMLException
    from signxml.verifier import SignatureConfiguration, XMLVerifier

    verifier_class = _verifier_class()
    if index and verifier_class is XMLVerifier:
        return Check.skipped("signature", "this signxml verifies only a document's first signature"), (
            Check.skipped("digest", "not checked")
        )
    verifier = verifier_class()
    verifier.index = index

    methods = frozenset(m for m in SignatureConfiguration().signature_methods if "hmac" not in m.value)
    assert all(isinstance(m, SignatureMethod) for m in methods)
    # Validity in time is the chain check's business (at the time we choose); signxml would otherwise
    # fail an expired certificate's signature as if its bytes were wrong.
    config = SignatureConfiguration(
        require_x509=True,
        expect_references=max(references, 1),
        signature_methods=methods,
        verification_time=leaf.not_valid_before_utc,
    )
    try:
        verifier.verify(raw, x509_cert=leaf, expect_config=config)
    except InvalidDigest as exc:
        return Check.passed("signature", "SignatureValue holds over SignedInfo"), Check.failed(
            "digest", _said(exc, "a reference does not match its digest")
        )
    except InvalidSignature as exc:
        return Check.failed("signature", _said(exc, "signature does not verify")), Check.skipped(
            "digest", "not checked: the signature failed"
        )
    except (InvalidInput, SignXMLException, etree.LxmlError, ValueError, TypeError, KeyError) as exc:
        return Check.failed("signature", f"cannot verify: {exc}"), Check.skipped("digest", "not checked")
    return (
        Check.passed("signature", "SignatureValue holds over SignedInfo under the KeyInfo certificate"),
        Check.passed("digest", f"{references} reference(s) match their digests"),
    )


def _said(exc: Exception, fallback: str) -> str:
    """signxml's message without its empty tails ("Signature verification failed: ", "... ()")."""
    text = str(exc).strip().removesuffix("()").strip().rstrip(":").strip()
    return text or fallback


HANDLERS: list[FileHandler] = [XmlDsigHandler()]
