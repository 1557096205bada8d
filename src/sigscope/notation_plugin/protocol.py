"""What both sides of the plugin protocol agree on: the contract version, key specs and their algorithms,
capability and error-code names."""

from __future__ import annotations

from dataclasses import dataclass

from sigscope.errors import SigscopeError

CONTRACT_VERSION = "1.0"
PLUGIN_NAME = "sigscope"
RAW_SIGNER = "SIGNATURE_GENERATOR.RAW"
GET_METADATA = "get-plugin-metadata"
DESCRIBE_KEY = "describe-key"
GENERATE_SIGNATURE = "generate-signature"

VALIDATION_ERROR = "VALIDATION_ERROR"
UNSUPPORTED_CONTRACT_VERSION = "UNSUPPORTED_CONTRACT_VERSION"
ACCESS_DENIED = "ACCESS_DENIED"
TIMEOUT = "TIMEOUT"
THROTTLED = "THROTTLED"
ERROR = "ERROR"
ERROR_CODES = frozenset(
    {VALIDATION_ERROR, UNSUPPORTED_CONTRACT_VERSION, ACCESS_DENIED, TIMEOUT, THROTTLED, ERROR}
)


@dataclass(frozen=True)
class KeySpec:
    """One of the spec's key specs: the JOSE alg, the hash to send and the signing algorithm to expect."""

    name: str
    alg: str
    hash: str
    signing_algorithm: str


KEY_SPECS = {
    spec.name: spec
    for spec in (
        KeySpec("RSA-2048", "PS256", "SHA-256", "RSASSA-PSS-SHA-256"),
        KeySpec("RSA-3072", "PS384", "SHA-384", "RSASSA-PSS-SHA-384"),
        KeySpec("RSA-4096", "PS512", "SHA-512", "RSASSA-PSS-SHA-512"),
        KeySpec("EC-256", "ES256", "SHA-256", "ECDSA-SHA-256"),
        KeySpec("EC-384", "ES384", "SHA-384", "ECDSA-SHA-384"),
        KeySpec("EC-521", "ES512", "SHA-512", "ECDSA-SHA-512"),
    )
}


class PluginError(SigscopeError):
    """A plugin protocol failure, with the spec's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
