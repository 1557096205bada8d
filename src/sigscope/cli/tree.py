"""The signature tree `sigscope inspect --signatures` prints."""

from __future__ import annotations

from rich.text import Text
from rich.tree import Tree

from sigscope.model import Outcome, Signature
from sigscope.report.cells import cell, printable
from sigscope.report.render import STATUS_STYLE
from sigscope.scan.registry import ImageResult

MARK = {Outcome.PASSED: "✓", Outcome.FAILED: "✗", Outcome.SKIPPED: "–"}


def _signature_node(parent: Tree, signature: Signature) -> None:
    label = Text.assemble(
        (str(signature.format), "bold"),
        f"  {printable(signature.location)}  ",
        (str(signature.status), STATUS_STYLE.get(str(signature.status), "")),
    )
    node = parent.add(label)
    signer = signature.signer
    if signer is not None:
        node.add(cell(f"signer: {signer.display_name}"))
        cert = signer.certificate
        if cert is not None:
            if cert.issuer:
                node.add(cell(f"issuer: {cert.issuer}"))
            for email in cert.emails:
                node.add(cell(f"email: {email}"))
            for uri in cert.uris:
                node.add(cell(f"uri: {uri}"))
            if cert.oidc_issuer:
                node.add(cell(f"oidc issuer: {cert.oidc_issuer}"))
            flags = [f for f, on in (("self-signed", cert.self_signed), ("expired", cert.expired)) if on]
            node.add(
                cell(
                    f"certificate: sha256 {cert.sha256}, {cert.key_type} {cert.key_size}, valid "
                    f"{cert.not_before:%Y-%m-%d} → {cert.not_after:%Y-%m-%d}"
                    + (f" [{', '.join(flags)}]" if flags else "")
                )
            )
            for link in signer.chain:
                node.add(cell(f"chain: {link.subject}"))
        if signer.public_key is not None:
            node.add(cell(f"public key: {signer.public_key.key_type} sha256:{signer.public_key.sha256}"))
        if signer.pgp is not None:
            node.add(
                cell(
                    f"OpenPGP key id: {signer.pgp.key_id}"
                    + (f" ({signer.pgp.fingerprint})" if signer.pgp.fingerprint else "")
                )
            )
    elif signature.claims.get("keyOnly"):
        node.add("signer: key-only signature (the key is not recorded; verify with --key)")
    if signature.signed_digest:
        node.add(cell(f"signed digest: {signature.signed_digest}"))
    for key in ("docker-reference", "predicateType", "signingScheme"):
        if signature.claims.get(key):
            node.add(cell(f"{key}: {signature.claims[key]}"))
    if signature.signing_time:
        node.add(cell(f"signing time: {signature.signing_time.isoformat()}"))
    if signature.expiry:
        node.add(cell(f"expiry: {signature.expiry.isoformat()}"))
    node.add(cell(f"timestamped: {'yes' if signature.timestamped else 'no'}"))
    stamp = signature.claims.get("timestamp")
    if isinstance(stamp, dict) and stamp.get("time"):
        verified = "verified" if stamp.get("verified") else "not verified: no TSA roots given"
        node.add(cell(f"RFC 3161 timestamp: {stamp['time']} by {stamp.get('tsa', '?')} ({verified})"))
    elif signature.claims.get("timestampCountersignature"):
        node.add("RFC 3161 timestamp countersignature: present (judged by the trust policy's tsa store)")
    if signature.claims.get("signingAgent"):
        node.add(cell(f"signing agent: {signature.claims['signingAgent']}"))
    metadata = signature.claims.get("userMetadata")
    if isinstance(metadata, dict) and metadata:
        meta = node.add("user metadata")
        for key, value in sorted(metadata.items()):
            meta.add(cell(f"{key}: {value}"))
    if signature.error:
        node.add(cell(f"error: {signature.error}", style="red"))
    checks = node.add("checks")
    for check in signature.checks:
        style = {"passed": "green", "failed": "red", "skipped": "dim"}[str(check.outcome)]
        checks.add(
            cell(
                f"{MARK[check.outcome]} {check.name}" + (f": {check.detail}" if check.detail else ""),
                style=style,
            )
        )


def _image_node(tree: Tree, result: ImageResult) -> None:
    if result.error:
        tree.add(cell(f"error: {result.error}", style="red"))
    if not result.signatures and not result.error:
        tree.add(Text("no signatures", style="dim"))
    for signature in result.signatures:
        _signature_node(tree, signature)
    for attachment in result.attachments:
        signed = "signed" if attachment.signed else "unsigned"
        node = tree.add(cell(f"attachment {attachment.artifact_type} {attachment.digest} ({signed})"))
        for signature in attachment.signatures:
            _signature_node(node, signature)


def signature_tree(reference: str, results: list[ImageResult]) -> Tree:
    top, *children = results
    tree = Tree(Text.assemble((printable(reference), "bold"), f"  {printable(top.digest)}"))
    _image_node(tree, top)
    for child in children:
        branch = tree.add(
            Text.assemble(("platform ", ""), (printable(child.platform or "?"), "bold"), f"  {child.digest}")
        )
        _image_node(branch, child)
    return tree
