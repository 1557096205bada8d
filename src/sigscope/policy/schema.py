"""The published JSON Schema of a sigscope policy document (`sigscope policy schema` prints it).

The schema checks shape; what it cannot say (a file that does not exist, an authority named twice, two
rules equally specific for one image) the loader checks after it, with the same path notation.
"""

from __future__ import annotations

from typing import Any

SCHEMA_ID = "https://sigscope.dev/schemas/policy/v1.json"

_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"}
_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}
_PATTERNS = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 512}}


def _exactly_one(*names: str) -> list[dict[str, Any]]:
    return [{"required": [name]} for name in names]


_IDENTITY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "issuer": {"type": "string", "minLength": 1},
        "issuerRegExp": {"type": "string", "minLength": 1},
        "subject": {"type": "string", "minLength": 1},
        "subjectRegExp": {"type": "string", "minLength": 1},
    },
    "oneOf": _exactly_one("subject", "subjectRegExp"),
    "not": {"required": ["issuer", "issuerRegExp"]},
}
_IDENTITIES = {"type": "array", "minItems": 1, "items": _IDENTITY}

_KINDS: dict[str, dict[str, Any]] = {
    "key": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"path": {"type": "string", "minLength": 1}, "pem": {"type": "string", "minLength": 1}},
        "oneOf": _exactly_one("path", "pem"),
    },
    "keyless": {
        "type": "object",
        "additionalProperties": False,
        "required": ["trustedRoot", "identities"],
        "properties": {"trustedRoot": {"type": "string", "minLength": 1}, "identities": _IDENTITIES},
    },
    "certificate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["roots", "identities"],
        "properties": {
            "roots": {"type": "string", "minLength": 1},
            "intermediates": _STRINGS,
            "identities": _IDENTITIES,
        },
    },
    "notation": {
        "type": "object",
        "additionalProperties": False,
        "required": ["trustPolicy", "trustStore"],
        "properties": {
            "trustPolicy": {"type": "string", "minLength": 1},
            "trustStore": {"type": "string", "minLength": 1},
        },
    },
    "gpg": {
        "type": "object",
        "additionalProperties": False,
        "required": ["keyring"],
        "properties": {
            "keyring": {"type": "string", "minLength": 1},
            "registriesD": {"type": "string", "minLength": 1},
        },
    },
    "containersPolicy": {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "registriesD": {"type": "string", "minLength": 1},
        },
    },
    "attestation": {
        "type": "object",
        "additionalProperties": False,
        "required": ["predicateType", "by"],
        "properties": {
            "predicateType": {"type": "string", "minLength": 1},
            # an authority of the rule (key, keyless or certificate), or a signer of its own that does not
            # count toward the threshold: {key: …}, {keyless: …} or {certificate: …}
            "by": {"type": "array", "minItems": 1, "items": {"anyOf": [_NAME, {"$ref": "#/$defs/signer"}]}},
            "conditions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["path"],
                    "properties": {
                        "path": {"type": "string", "pattern": r"^\$"},
                        "equals": {},
                        "in": {"type": "array"},
                        "exists": {"type": "boolean"},
                        "matches": {"type": "string"},
                    },
                    "oneOf": _exactly_one("equals", "in", "exists", "matches"),
                },
            },
        },
    },
}
AUTHORITY_KINDS = tuple(_KINDS)
# What may sign an attestation: an inline `by` item is one of these.
ATTESTATION_SIGNERS = ("key", "keyless", "certificate")
_SIGNER = {
    "type": "object",
    "additionalProperties": False,
    "properties": {kind: _KINDS[kind] for kind in ATTESTATION_SIGNERS},
    "oneOf": _exactly_one(*ATTESTATION_SIGNERS),
}
# What a signature authority may add to each signature's policy checks (verify's -a, --exact-reference,
# --signed-identity).
SIGNATURE_KINDS = ("key", "keyless", "certificate", "gpg")

_AUTHORITY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": _NAME,
        **_KINDS,
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "exactReference": {"type": "boolean"},
        "signedIdentity": {"type": "string", "minLength": 1},
        # must be satisfied besides the threshold, which counts only the authorities not marked required
        "required": {"type": "boolean"},
    },
    "oneOf": _exactly_one(*_KINDS),
}

_RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "images"],
    "properties": {
        "name": _NAME,
        "images": {**_PATTERNS, "minItems": 1},
        "mode": {"enum": ["enforce", "warn"]},
        "threshold": {"type": "integer", "minimum": 1},
        "authorities": {"type": "array", "items": _AUTHORITY},
        "static": {"enum": ["allow", "deny"]},
        "onError": {"enum": ["deny", "allow"]},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "sigscope policy",
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "rules"],
    "properties": {
        "apiVersion": {"const": "sigscope/v1"},
        "kind": {"const": "Policy"},
        "unmatched": {"enum": ["deny", "allow"]},
        "exemptions": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"images": _PATTERNS, "namespaces": _STRINGS},
        },
        "rules": {"type": "array", "items": _RULE},
    },
    "$defs": {"signer": _SIGNER},
}
