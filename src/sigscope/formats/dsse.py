"""DSSE envelopes and the in-toto statements they usually carry.

Pure parsing: an envelope or statement either comes out typed or a :class:`DSSEError` says what is wrong
with it. Signature checks live with the formats that know which key to use.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sigscope.formats import gojson
from sigscope.formats.gojson import go_json as _go_json
from sigscope.formats.gojson import sorted_maps

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_TYPES = frozenset({STATEMENT_V01, STATEMENT_V1})


class DSSEError(ValueError):
    """An envelope or statement that does not parse; the message is meant for a user."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what the signature actually covers.

    Lengths are byte counts, so a non-ASCII payloadType is measured after UTF-8 encoding.
    """
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def b64decode(text: Any, what: str) -> bytes:
    """Standard base64 as Go writes it, tolerating URL-safe and unpadded input as the DSSE spec allows."""
    if not isinstance(text, str):
        raise DSSEError(f"{what} is not a base64 string")
    compact = "".join(text.split())
    padded = compact + "=" * (-len(compact) % 4)
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise DSSEError(f"{what} is not valid base64") from None


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: list[tuple[str, bytes]]  # (keyid, signature)

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def go_json(self) -> bytes:
        """The envelope as Go's encoding/json writes it; Rekor's dsse envelopeHash is over these bytes."""
        document = {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [
                {"keyid": keyid, "sig": base64.b64encode(sig).decode()} for keyid, sig in self.signatures
            ],
        }
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return text.encode()


def parse_envelope(data: bytes | dict[str, Any]) -> Envelope:
    """An envelope from its JSON bytes or an already-decoded object (a Sigstore bundle embeds one)."""
    if isinstance(data, dict):
        document: Any = data
    else:
        try:
            document = gojson.read(data, "DSSE envelope")
        except ValueError as exc:
            raise DSSEError(str(exc)) from None
    if not isinstance(document, dict):
        raise DSSEError("DSSE envelope is not a JSON object")
    payload_type = document.get("payloadType")
    if not isinstance(payload_type, str) or not payload_type:
        raise DSSEError("DSSE envelope has no payloadType")
    if "payload" not in document:
        raise DSSEError("DSSE envelope has no payload")
    payload = b64decode(document["payload"], "DSSE payload")
    raw_signatures = document.get("signatures")
    if not isinstance(raw_signatures, list):
        raise DSSEError("DSSE envelope has no signatures list")
    signatures: list[tuple[str, bytes]] = []
    for position, entry in enumerate(raw_signatures):
        if not isinstance(entry, dict):
            raise DSSEError(f"DSSE signature {position} is not a JSON object")
        keyid = entry.get("keyid") or ""
        if not isinstance(keyid, str):
            raise DSSEError(f"DSSE signature {position} has a non-string keyid")
        sig = b64decode(entry.get("sig"), f"DSSE signature {position}")
        if not sig:
            raise DSSEError(f"DSSE signature {position} is empty")
        signatures.append((keyid, sig))
    return Envelope(payload_type=payload_type, payload=payload, signatures=signatures)


def parse_statement(payload: bytes) -> dict[str, Any]:
    """An in-toto statement (v0.1 or v1) from a DSSE payload."""
    try:
        statement = gojson.read(payload, "in-toto statement")
    except ValueError as exc:
        raise DSSEError(str(exc)) from None
    if not isinstance(statement, dict):
        raise DSSEError("in-toto statement is not a JSON object")
    kind = statement.get("_type")
    if kind not in STATEMENT_TYPES:
        raise DSSEError(f"not an in-toto statement: _type is {kind!r}")
    if not isinstance(statement.get("predicateType"), str) or not statement["predicateType"]:
        raise DSSEError("in-toto statement has no predicateType")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise DSSEError("in-toto statement has no subjects")
    statement_subjects(statement)
    return statement


def statement_type(statement: dict[str, Any]) -> str | None:
    value = statement.get("_type")
    return value if isinstance(value, str) else None


def predicate_type(statement: dict[str, Any]) -> str | None:
    value = statement.get("predicateType")
    return value if isinstance(value, str) else None


def statement_subjects(statement: dict[str, Any]) -> list[tuple[str | None, dict[str, str]]]:
    """(name, {algorithm: hex}) per subject; in-toto v1 makes the name optional (cosign v3 omits it)."""
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        raise DSSEError("in-toto statement subject is not a list")
    out: list[tuple[str | None, dict[str, str]]] = []
    for position, subject in enumerate(subjects):
        if not isinstance(subject, dict):
            raise DSSEError(f"in-toto subject {position} is not a JSON object")
        name = subject.get("name")
        digest = subject.get("digest")
        if not isinstance(digest, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in digest.items()
        ):
            raise DSSEError(f"in-toto subject {position} has no digest map")
        out.append(
            (name if isinstance(name, str) else None, {k.lower(): v.lower() for k, v in digest.items()})
        )
    return out


def subjects_json(subjects: list[tuple[str | None, dict[str, str]]]) -> list[dict[str, Any]]:
    """Subjects as report claims: what a reader compares against the image digest."""
    return [{"name": name, "digest": dict(digest)} for name, digest in subjects]


def matching_subject(subjects: list[tuple[str | None, dict[str, str]]], digest: str) -> str | None:
    """The `<algorithm>:<hex>` of the first subject naming `digest`, else None."""
    algorithm, _, value = digest.lower().partition(":")
    if not value:
        return None
    for _, digests in subjects:
        if digests.get(algorithm) == value:
            return f"{algorithm}:{value}"
    return None


def describe_subjects(subjects: list[tuple[str | None, dict[str, str]]]) -> str:
    parts = []
    for name, digests in subjects:
        shown = ", ".join(f"{k}:{v}" for k, v in sorted(digests.items())) or "no digest"
        parts.append(f"{name} ({shown})" if name else shown)
    return "; ".join(parts) or "none"


# ---------------------------------------------------------------- builders (for signing)


def build_statement(
    subjects: list[tuple[str | None, dict[str, str]]],
    predicate_type: str,
    predicate: Any,
    *,
    statement_type: str = STATEMENT_V01,
) -> bytes:
    """An in-toto statement as cosign attest writes it (in-toto-golang field order: `_type`,
    `predicateType`, `subject`, `predicate`; the predicate re-marshalled as a Go map)."""
    if not predicate_type:
        raise DSSEError("an in-toto statement needs a predicateType")
    if not subjects:
        raise DSSEError("an in-toto statement needs at least one subject")
    subject_list: list[dict[str, Any]] = []
    for name, digests in subjects:
        entry: dict[str, Any] = {}
        if name is not None:
            entry["name"] = name
        entry["digest"] = {k: digests[k] for k in sorted(digests)}
        subject_list.append(entry)
    return _go_json(
        {
            "_type": statement_type,
            "predicateType": predicate_type,
            "subject": subject_list,
            "predicate": sorted_maps(predicate),
        }
    )


def build_envelope(
    payload_type: str, payload: bytes, sign: Callable[[bytes], bytes], keyid: str = ""
) -> Envelope:
    """A one-signature envelope: `sign` is given the PAE, never the bare payload."""
    return Envelope(
        payload_type=payload_type, payload=payload, signatures=[(keyid, sign(pae(payload_type, payload)))]
    )
