"""Fuzz targets for every parser of outside bytes (issue 12): each either returns its record or raises the
error type it declares, never anything else (RecursionError, IndexError, KeyError, struct.error,
UnicodeDecodeError ...), and a record-returning parser never reports an internal error.

Inputs are real fixtures and vectors mutated by hypothesis (bit flips, byte changes, insertions,
deletions, truncations, splices, and JSON-aware edits: deep nesting, duplicate and case-folded keys,
surrogates, huge numbers). The budget is bounded for CI: EXAMPLES (150) per target keeps the module
near 15 s, well under a minute on two cores; `SIGSCOPE_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py`
searches longer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testbed import vectors

from sigscope.errors import SigscopeError
from sigscope.files.base import HEAD_SIZE, FileTrust
from sigscope.files.registry import HANDLERS
from sigscope.formats import bundle, cosign, dsse, gojson, notation, payload
from sigscope.formats import simplesigning as ss
from sigscope.model import Descriptor, Manifest, Signature
from sigscope.oci import mediatypes, referrers
from sigscope.trust import containers_policy, notation_policy, pgp

EXAMPLES = int(os.environ.get("SIGSCOPE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # CI runs the same examples every time; a failure is reproducible by its seed
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FILES = Path(__file__).parent / "fixtures" / "files"
DIGEST = "sha256:" + "a" * 64
SIGNATURES = vectors.ROOT / "containers-image" / "signature" / "fixtures"
BUNDLES = vectors.ROOT / "sigstore-sigstore-go" / "pkg" / "testing" / "data" / "bundles"

# ---------------------------------------------------------------- mutations

_JSON_EDITS = (
    (b"{", b"[" * 200 + b"{"),
    (b"[", b"[" * 100_000),
    (b'":', b'":{"k":1,"k":2},"x":'),
    (b'":', b'":{"k":1,"K":2},"x":'),
    (b'"', b'"\\ud800'),
    (b"1", b"1e400"),
    (b"0", b"NaN"),
    (b"}", b"}" * 3),
    (b'"', b"\\"),
    (b":", b":null,"),
)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes], *, json_edits: bool = False) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("flip", "byte", "insert", "delete", "truncate", "splice", "json")))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            data[min(at, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "splice":
            other = draw(st.sampled_from(seeds))
            start = draw(st.integers(0, len(other)))
            data[at:at] = other[start : start + draw(st.integers(1, 256))]
        elif kind == "json" and json_edits:
            old, new = draw(st.sampled_from(_JSON_EDITS))
            found = data.find(old, at)
            if found >= 0:
                data[found : found + len(old)] = new
    return bytes(data)


def _raises_only(
    call: Callable[[], object], declared: type[BaseException] | tuple[type[BaseException], ...]
) -> None:
    try:
        call()
    except declared:
        pass


def _no_internal_error(sig: Signature) -> None:
    assert sig.error is None or "internal error" not in sig.error, sig.error
    json.dumps(sig.to_json())  # the record stays reportable


def _read(*paths: Path) -> list[bytes]:
    return [vectors.require(path).read_bytes() for path in paths]


# ---------------------------------------------------------------- JSON and payloads

_PAYLOAD = json.dumps(
    {
        "critical": {
            "identity": {"docker-reference": "example.com/app:1"},
            "image": {"docker-manifest-digest": DIGEST},
            "type": "cosign container image signature",
        },
        "optional": {"creator": "x", "timestamp": 1},
    }
).encode()
_STATEMENT = json.dumps(
    {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "x", "digest": {"sha256": "a" * 64}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"externalParameters": {"a": [1, 2, {"b": None}]}}},
    }
).encode()
_ENVELOPE = json.dumps(
    {"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": [{"sig": "AAAA"}]}
).encode()
_MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 2},
        "layers": [{"mediaType": "x", "digest": DIGEST, "size": 1, "annotations": {"a": "b"}}],
        "subject": {"mediaType": mediatypes.OCI_MANIFEST, "digest": DIGEST, "size": 3},
    }
).encode()
_INDEX = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [{"mediaType": "x", "digest": DIGEST, "size": 1, "platform": {"os": "linux"}}],
    }
).encode()
JSON_SEEDS = [_PAYLOAD, _STATEMENT, _ENVELOPE, _MANIFEST, _INDEX]


@FUZZ
@given(mutated(JSON_SEEDS, json_edits=True))
def test_fuzz_gojson_read(raw: bytes) -> None:
    _raises_only(lambda: gojson.read(raw, "doc"), SigscopeError)


@FUZZ
@given(mutated([_PAYLOAD], json_edits=True))
def test_fuzz_payloads(raw: bytes) -> None:
    _raises_only(lambda: payload.read(raw), payload.PayloadError)
    _raises_only(lambda: ss.parse_payload(raw), ss.SimpleSigningError)
    layer = Descriptor(cosign.SIMPLESIGNING_MEDIA_TYPE, DIGEST, len(raw), annotations={})
    _no_internal_error(
        cosign.parse_signature_layer(layer, raw, subject_digest=DIGEST, location="fuzz", now=NOW)
    )


@FUZZ
@given(mutated([_ENVELOPE, _STATEMENT], json_edits=True))
def test_fuzz_dsse(raw: bytes) -> None:
    _raises_only(lambda: dsse.parse_envelope(raw), dsse.DSSEError)
    _raises_only(lambda: dsse.parse_statement(raw), dsse.DSSEError)
    layer = Descriptor(cosign.DSSE_MEDIA_TYPE, DIGEST, len(raw), annotations={})
    _no_internal_error(
        cosign.parse_attestation_layer(layer, raw, subject_digest=DIGEST, location="fuzz", now=NOW)
    )


@FUZZ
@given(mutated([_MANIFEST, _INDEX], json_edits=True))
def test_fuzz_manifests_and_referrers(raw: bytes) -> None:
    manifest = Manifest(Descriptor(mediatypes.OCI_MANIFEST, DIGEST, len(raw)), raw)
    for read in (manifest.json, manifest.children, manifest.layers, manifest.annotations, manifest.subject):
        _raises_only(read, SigscopeError)
    _raises_only(lambda: referrers.parse_index(raw, "fuzz"), SigscopeError)


@pytest.mark.vectors
def test_fuzz_bundles() -> None:
    seeds = _read(BUNDLES / "dsse.sigstore.json", BUNDLES / "dsse-2sigs.sigstore.json")

    @FUZZ
    @given(mutated(seeds, json_edits=True))
    def run(raw: bytes) -> None:
        _no_internal_error(bundle.parse_bundle(raw, subject_digest=DIGEST, location="fuzz", now=NOW))

    run()


@pytest.mark.vectors
def test_fuzz_notation_envelopes() -> None:
    notation_go = vectors.ROOT / "notaryproject-notation-go"
    mock = vectors.require(notation_go / "internal" / "mock" / "testdata")
    seeds = [path.read_bytes() for path in sorted(mock.glob("*.json"))]
    seeds += _read(notation_go / "internal" / "testdata" / "cose_signature.sig")
    subject = Descriptor(mediatypes.OCI_MANIFEST, DIGEST, 1)

    @FUZZ
    @given(
        mutated(seeds, json_edits=True), st.sampled_from((notation.JWS_MEDIA_TYPE, notation.COSE_MEDIA_TYPE))
    )
    def run(raw: bytes, media_type: str) -> None:
        _no_internal_error(
            notation.parse_envelope(raw, media_type, subject=subject, location="fuzz", now=NOW)
        )

    run()


_CONTAINERS_POLICY = json.dumps(
    {
        "default": [{"type": "reject"}],
        "transports": {"docker": {"example.com": [{"type": "sigstoreSigned", "keyData": "QUJD"}]}},
    }
).encode()
_TRUST_POLICY = json.dumps(
    {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "p",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:s"],
                "trustedIdentities": ["*"],
            }
        ],
    }
).encode()


@FUZZ
@given(mutated([_CONTAINERS_POLICY, _TRUST_POLICY], json_edits=True))
def test_fuzz_policies(raw: bytes) -> None:
    _raises_only(lambda: containers_policy.parse_policy(raw), containers_policy.PolicyFormatError)
    _raises_only(lambda: notation_policy.parse_policy(raw), notation_policy.TrustPolicyError)


# ---------------------------------------------------------------- OpenPGP


@pytest.mark.vectors
def test_fuzz_openpgp() -> None:
    messages = _read(SIGNATURES / "image.signature", SIGNATURES / "subkey.signature-v3")
    rings = _read(SIGNATURES / "public-key.gpg", SIGNATURES / "public-key-with-subkey.gpg")

    @FUZZ
    @given(mutated(messages), mutated(rings))
    def run(message: bytes, ring: bytes) -> None:
        _raises_only(lambda: ss.parse_message(message), ss.SimpleSigningError)
        _no_internal_error(ss.parse_signature(message, subject_digest=DIGEST, location="fuzz", now=NOW))
        try:
            keyring = pgp.load_keyring(ring)
        except pgp.KeyringError:
            return
        signature = ss.parse_signature(messages[0], subject_digest=DIGEST, location="fuzz", now=NOW)
        _no_internal_error(pgp.verify_signature(signature, keyring, NOW))

    run()


# ---------------------------------------------------------------- signed files


def _file_seeds(*names: str) -> list[tuple[str, bytes]]:
    return [(name, (FILES / name).read_bytes()) for name in names]


FILE_KINDS: dict[str, list[tuple[str, bytes]]] = {
    "authenticode": _file_seeds("authenticode/ts-rfc3161.exe", "authenticode/ec.dll"),
    "msi": _file_seeds("authenticode/ts-rfc3161.msi"),
    "cab": _file_seeds("authenticode/ts-ec.cab"),
    "jar": _file_seeds("jar/signed-tsa.jar", "jar/signed-ec.jar"),
    "apk": _file_seeds("apk/signed-v1v2v3-rsa.apk", "apk/signed-v3-rotated-ec-rsa.apk"),
    "xml": _file_seeds("xml/signed-rsa.xml", "xml/signed-ec.xml"),
    "powershell": _file_seeds("powershell/signed-tsa.ps1", "powershell/signed-utf16.ps1"),
}


def _inspect(path: Path) -> None:
    with path.open("rb") as handle:
        head = handle.read(HEAD_SIZE)
    for handler in [h for h in HANDLERS if h.sniff(head, path)]:
        try:
            list(handler.inspect(path, True, FileTrust(at=NOW)))
        except SigscopeError:
            pass


@pytest.mark.parametrize("kind", sorted(FILE_KINDS))
def test_fuzz_signed_files(kind: str, tmp_path: Path) -> None:
    seeds = FILE_KINDS[kind]
    names = {data: name for name, data in seeds}

    @FUZZ
    @given(mutated([data for _, data in seeds]), st.sampled_from(seeds))
    def run(raw: bytes, seed: tuple[str, bytes]) -> None:
        # keep a file name the handler sniffs by extension (.jar, .ps1, .xml ...)
        target = tmp_path / Path(names.get(seed[1], seed[0])).name
        target.write_bytes(raw)
        _inspect(target)

    run()


def _signature_blocks() -> list[bytes]:
    import zipfile

    blocks = []
    for name in ("jar/signed-tsa.jar", "jar/signed-rsa.jar", "jar/signed-ec.jar"):
        with zipfile.ZipFile(FILES / name) as archive:
            blocks += [
                archive.read(info)
                for info in archive.infolist()
                if info.filename.upper().endswith((".RSA", ".EC", ".DSA"))
            ]
    return blocks


def test_fuzz_pkcs7() -> None:
    from sigscope.files import jar, pkcs7

    blocks = _signature_blocks()
    assert blocks

    @FUZZ
    @given(mutated(blocks))
    def run(der: bytes) -> None:
        _raises_only(lambda: pkcs7.load_signed_data(der), SigscopeError)
        _raises_only(lambda: pkcs7.report_signer(der, NOW), SigscopeError)
        _raises_only(lambda: pkcs7.content_info(der), ValueError)  # declared: ValueError
        _raises_only(lambda: jar.parse_manifest(der), SigscopeError)

    run()
