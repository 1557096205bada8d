"""Real Notary Project (notation) signatures from notation-go's test vectors, made discoverable.

The vectors (``/work/shared/vectors/notaryproject-notation-go/internal/testdata/``) hold an OCI layout
whose manifest ``sha256:19dbd2e4…`` (tag ``v2``) is signed by ``cose_signature.sig`` (COSE_Sign1, PS256)
and ``jws_signature.sig`` (JWS, PS256). notation-go's tests hand the envelopes over directly; here they are
wrapped the way ``notation sign`` stores them (FORMATS §2.1 signature manifest, §3 referrers tag schema),
so a scanner finds them like any other registry or layout content. Nothing is written into the vectors.

The vector layout lacks its 3.3 MB layer blob (VECTORS.md). A scan only needs manifests, but distribution
2.8 refuses to store a manifest whose blobs it does not hold (``MANIFEST_BLOB_UNKNOWN``; no ``validation:``
setting relaxes that — see :func:`push_notation_vector`), so the subject is written into the registry's
filesystem storage instead when the API refuses it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from . import vectors
from .images import REF_NAME, _session, _upload_blob, sha256_digest
from .registry import MANIFEST_ACCEPT, OCI_INDEX, OCI_MANIFEST

#: Root of the notation-go vectors (override with ``SIGSCOPE_VECTORS``, the directory holding ``VECTORS.md``).
VECTORS_ROOT = vectors.ROOT
NOTATION_TESTDATA = VECTORS_ROOT / "notaryproject-notation-go" / "internal" / "testdata"
VECTOR_LAYOUT = NOTATION_TESTDATA / "oci-layout"
VECTOR_LAYOUT_TAG = "v2"
#: The manifest both vector envelopes sign.
VECTOR_SUBJECT_DIGEST = "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0"
#: The layer blob the vector layout does not ship.
VECTOR_MISSING_LAYER = "sha256:63b65145d645c1250c391b2d16ebe53b3747c295ca8ba2fcb6b0cf064a4dc21c"

NOTARY_SIGNATURE = "application/vnd.cncf.notary.signature"
COSE_MEDIA_TYPE = "application/cose"
JWS_MEDIA_TYPE = "application/jose+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
THUMBPRINT_ANNOTATION = "io.cncf.notary.x509chain.thumbprint#S256"
CREATED_ANNOTATION = "org.opencontainers.image.created"

#: envelope format → (vector file, layer media type)
ENVELOPES: dict[str, tuple[str, str]] = {
    "cose": ("cose_signature.sig", COSE_MEDIA_TYPE),
    "jws": ("jws_signature.sig", JWS_MEDIA_TYPE),
}


def go_json(obj: Any) -> bytes:
    """Compact JSON in insertion order (how Go serialises the structs notation/oras write)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def referrers_tag(digest: str) -> str:
    """OCI referrers fallback tag for ``digest`` (FORMATS §3): ``sha256-<hex>``."""
    algo, _, hexpart = digest.partition(":")
    return f"{algo[:32]}-{hexpart[:64]}"


def vectors_available() -> bool:
    return (VECTOR_LAYOUT / "index.json").is_file() and (NOTATION_TESTDATA / "cose_signature.sig").is_file()


def _utc_rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cose_chain_and_time(envelope: bytes) -> tuple[list[bytes], str | None] | None:
    """(x5chain DER certs, signing time) of a COSE_Sign1 envelope, or None when cbor2 is not installed."""
    try:
        import cbor2
    except ImportError:  # pragma: no cover - cbor2 is a sigscope dependency
        return None
    decoded = cbor2.loads(envelope)
    value = decoded.value if isinstance(decoded, cbor2.CBORTag) else decoded
    protected_bstr, unprotected, _payload, _sig = value
    protected = cbor2.loads(protected_bstr) if protected_bstr else {}
    chain = unprotected.get(33, protected.get(33))
    certs = [chain] if isinstance(chain, bytes) else list(chain or [])
    when = protected.get("io.cncf.notary.signingTime") or protected.get("io.cncf.notary.authenticSigningTime")
    created = _utc_rfc3339(when) if isinstance(when, dt.datetime) else None
    return certs, created


def _jws_chain_and_time(envelope: bytes) -> tuple[list[bytes], str | None]:
    doc = json.loads(envelope)
    certs = [base64.b64decode(c) for c in doc["header"]["x5c"]]
    protected_b64 = doc["protected"]
    protected = json.loads(base64.urlsafe_b64decode(protected_b64 + "=" * (-len(protected_b64) % 4)))
    when = protected.get("io.cncf.notary.signingTime") or protected.get("io.cncf.notary.authenticSigningTime")
    created = _utc_rfc3339(dt.datetime.fromisoformat(when)) if isinstance(when, str) else None
    return certs, created


@dataclass(frozen=True)
class NotationSignature:
    """One signature manifest built around a vector envelope."""

    envelope_format: str  # "cose" | "jws"
    envelope: bytes
    manifest: bytes
    digest: str
    #: False when the thumbprint annotation had to be left out (cbor2 missing for COSE)
    has_thumbprints: bool

    @property
    def descriptor(self) -> dict[str, Any]:
        """Descriptor as it appears in a referrers index (artifactType + the manifest's annotations)."""
        manifest = json.loads(self.manifest)
        return {
            "mediaType": OCI_MANIFEST,
            "digest": self.digest,
            "size": len(self.manifest),
            "annotations": manifest.get("annotations", {}),
            "artifactType": NOTARY_SIGNATURE,
        }


def vector_subject() -> tuple[dict[str, Any], bytes]:
    """(descriptor from the vector index.json: mediaType, digest, size; manifest bytes) of the signed one."""
    top = json.loads((VECTOR_LAYOUT / "index.json").read_text())
    for entry in top["manifests"]:
        if entry["digest"] == VECTOR_SUBJECT_DIGEST:
            desc = {"mediaType": entry["mediaType"], "digest": entry["digest"], "size": entry["size"]}
            data = (VECTOR_LAYOUT / "blobs" / "sha256" / VECTOR_SUBJECT_DIGEST.split(":", 1)[1]).read_bytes()
            if sha256_digest(data) != desc["digest"] or len(data) != desc["size"]:
                raise ValueError("vector subject manifest does not match its index.json descriptor")
            return desc, data
    raise KeyError(f"{VECTOR_SUBJECT_DIGEST} not in {VECTOR_LAYOUT}/index.json")


def notation_signature(envelope_format: str = "cose") -> NotationSignature:
    """The OCI 1.1 signature manifest (FORMATS §2.1) for one vector envelope; subject = vector manifest."""
    filename, media_type = ENVELOPES[envelope_format]
    envelope = (NOTATION_TESTDATA / filename).read_bytes()
    subject, _ = vector_subject()
    parsed = _cose_chain_and_time(envelope) if envelope_format == "cose" else _jws_chain_and_time(envelope)
    annotations: dict[str, str] = {}
    if parsed is not None:
        certs, created = parsed
        thumbprints = [hashlib.sha256(c).hexdigest() for c in certs]
        annotations[THUMBPRINT_ANNOTATION] = json.dumps(thumbprints, separators=(",", ":"))
        if created:
            annotations[CREATED_ANNOTATION] = created
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": NOTARY_SIGNATURE,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
        "layers": [{"mediaType": media_type, "digest": sha256_digest(envelope), "size": len(envelope)}],
        "subject": subject,
        "annotations": annotations,
    }
    data = go_json(manifest)
    return NotationSignature(envelope_format, envelope, data, sha256_digest(data), parsed is not None)


def referrers_index(signatures: Sequence[NotationSignature]) -> bytes:
    """The OCI index the referrers fallback tag points at (FORMATS §3)."""
    return go_json(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [s.descriptor for s in signatures]}
    )


def _write_blob(layout: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return digest


def notation_layout(dest: Path, *, formats: Sequence[str] = ("cose",)) -> tuple[Path, str, str]:
    """Copy the vector layout to ``dest`` and add Notary signature manifests for it.

    Adds the empty config blob, each envelope as a layer blob, one signature manifest per format in
    ``formats`` (default: the COSE envelope only) and an OCI index listing them, tagged
    ``sha256-<subject hex>`` in ``index.json`` (the referrers tag schema). The subject keeps its vector
    tag ``v2``. The layer blob ``sha256:63b65145…`` is absent, as in the vectors. Returns (layout dir,
    subject digest, digest of the first signature manifest).
    """
    if not vectors_available():
        raise FileNotFoundError(f"notation-go vectors not found under {NOTATION_TESTDATA}")
    dest.mkdir(parents=True, exist_ok=True)
    for src in VECTOR_LAYOUT.rglob("*"):
        target = dest / src.relative_to(VECTOR_LAYOUT)
        if src.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)  # contents only: the vector files are read-only
    subject, _ = vector_subject()
    signatures = [notation_signature(f) for f in formats]
    _write_blob(dest, EMPTY_BLOB)
    for sig in signatures:
        _write_blob(dest, sig.envelope)
        _write_blob(dest, sig.manifest)
    index = referrers_index(signatures)
    index_digest = _write_blob(dest, index)
    tag = referrers_tag(subject["digest"])
    top_path = dest / "index.json"
    top = json.loads(top_path.read_text())
    top["manifests"] = [m for m in top["manifests"] if m.get("annotations", {}).get(REF_NAME) != tag] + [
        {"mediaType": OCI_INDEX, "digest": index_digest, "size": len(index), "annotations": {REF_NAME: tag}}
    ]
    top_path.write_text(json.dumps(top, indent=4))
    return dest, subject["digest"], signatures[0].digest


# -- registry ----------------------------------------------------------------------------------------------


class SubjectRefused(RuntimeError):
    """The registry refused the vector subject manifest (distribution: ``MANIFEST_BLOB_UNKNOWN``)."""


@dataclass(frozen=True)
class NotationPush:
    """Result of :func:`push_notation_vector`; unpacks as ``(subject_digest, signature_digest)``."""

    subject_digest: str
    signature_digest: str
    #: every signature manifest pushed, in referrers-index order
    signature_digests: tuple[str, ...]
    #: digest of the referrers fallback index (tag ``sha256-<subject hex>``)
    index_digest: str
    #: "api" (the registry accepted the subject manifest) or "storage" (written into its filesystem storage)
    subject_method: str
    #: what the registry answered to the subject manifest PUT
    subject_put_response: str

    def __iter__(self) -> Iterator[str]:
        yield self.subject_digest
        yield self.signature_digest


def _put_manifest(
    session: requests.Session, base: str, repo: str, ref: str, data: bytes, media_type: str
) -> str:
    r = session.put(
        f"{base}/v2/{repo}/manifests/{ref}", data=data, headers={"Content-Type": media_type}, timeout=30
    )
    if r.status_code != 201:
        raise RuntimeError(f"PUT {repo}:{ref} → {r.status_code} {r.text[:500]}")
    return r.headers.get("Docker-Content-Digest", sha256_digest(data))


def seed_manifest_in_storage(storage_root: Path, repo: str, tag: str, data: bytes) -> str:
    """Write a manifest into distribution's filesystem storage, as the registry would after a PUT.

    ``storage_root`` is ``storage.filesystem.rootdirectory`` (:attr:`RegistryHandle.rootdir`). The
    registry (no blob-descriptor cache configured) serves it on the next request: GET/HEAD by tag and
    digest, tags/list.
    Only for manifests whose blobs the registry cannot be given (the vector's missing layer).
    """
    digest = sha256_digest(data)
    hexpart = digest.split(":", 1)[1]
    v2 = storage_root / "docker" / "registry" / "v2"
    blob = v2 / "blobs" / "sha256" / hexpart[:2] / hexpart / "data"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    manifests = v2 / "repositories" / repo / "_manifests"
    links = [
        manifests / "revisions" / "sha256" / hexpart / "link",
        manifests / "tags" / tag / "current" / "link",
        manifests / "tags" / tag / "index" / "sha256" / hexpart / "link",
    ]
    for link in links:
        link.parent.mkdir(parents=True, exist_ok=True)
        link.write_text(digest)
    return digest


def push_notation_vector(
    host: str,
    repo: str,
    tag: str,
    workdir: Path,
    *,
    storage_root: Path | None = None,
    formats: Sequence[str] = ("cose",),
) -> NotationPush:
    """Put the vector subject (under ``tag``), its signature manifests (by digest) and the referrers fallback
    index (under ``sha256-<subject hex>``) into the plain-HTTP registry at ``host``.

    Blobs go through the API (vector config, empty config, envelopes). The subject manifest is PUT first;
    distribution 2.8.2 answers ``400 MANIFEST_BLOB_UNKNOWN sha256:63b65145…`` because the vector lacks that
    layer (``validation: {disabled: true}`` / ``enabled: false`` / ``manifests.urls.allow`` change nothing:
    only its pull-through-cache mode skips the check, and that mode refuses pushes). With ``storage_root``
    (the registry's ``rootdir``) the subject is then written straight into the registry's storage
    (:func:`seed_manifest_in_storage`); without it :class:`SubjectRefused` is raised. The signature manifests
    and the index go through the API (distribution stores ``subject``/``artifactType`` verbatim).
    Unpacks as ``(subject_digest, signature_digest)``; ``subject_method`` tells which path worked.
    """
    layout, subject_digest, _ = notation_layout(workdir / "notation-layout", formats=formats)
    subject, subject_bytes = vector_subject()
    signatures = [notation_signature(f) for f in formats]
    base = f"http://{host}"
    with _session() as s:
        subject_manifest = json.loads(subject_bytes)
        _upload_blob(
            s,
            base,
            repo,
            (layout / "blobs" / "sha256" / subject_manifest["config"]["digest"][7:]).read_bytes(),
        )
        _upload_blob(s, base, repo, EMPTY_BLOB)
        for sig in signatures:
            _upload_blob(s, base, repo, sig.envelope)
        r = s.put(
            f"{base}/v2/{repo}/manifests/{tag}",
            data=subject_bytes,
            headers={"Content-Type": subject["mediaType"]},
            timeout=30,
        )
        answer = f"{r.status_code} {r.text.strip()[:500]}"
        if r.status_code == 201:
            method = "api"
        elif storage_root is not None and r.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in r.text:
            seed_manifest_in_storage(storage_root, repo, tag, subject_bytes)
            method = "storage"
        else:
            raise SubjectRefused(f"PUT {repo}:{tag} (vector subject {subject_digest}) → {answer}")
        check = s.head(f"{base}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}, timeout=30)
        if check.status_code != 200 or check.headers.get("Docker-Content-Digest") != subject_digest:
            raise RuntimeError(
                f"registry does not serve the vector subject after {method} upload: {check.status_code} "
                f"{check.headers.get('Docker-Content-Digest')}"
            )
        for sig in signatures:
            _put_manifest(s, base, repo, sig.digest, sig.manifest, OCI_MANIFEST)
        index = referrers_index(signatures)
        index_digest = _put_manifest(s, base, repo, referrers_tag(subject_digest), index, OCI_INDEX)
    return NotationPush(
        subject_digest=subject_digest,
        signature_digest=signatures[0].digest,
        signature_digests=tuple(sig.digest for sig in signatures),
        index_digest=index_digest,
        subject_method=method,
        subject_put_response=answer,
    )
