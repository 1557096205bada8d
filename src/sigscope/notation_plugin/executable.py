"""`notation-sigscope`: a Notation signing plugin (capability SIGNATURE_GENERATOR.RAW) over any sigscope key.

notation runs `notation-sigscope COMMAND` with a JSON request on stdin and reads the JSON response on stdout
(exit 0), or an error `{errorCode, errorMessage}` on stderr (exit 1). The key id is what `--key` takes: a
key file path, a `pkcs11:` URI or `remote+https://HOST:PORT/NAME`. pluginConfig (`notation key add
--plugin-config k=v`, `notation sign --plugin-config k=v`) carries:

  certificate_chain   PEM chain of the key, leaf first; or, for a key whose home keeps its certificate (a
                      token's, a signing service's), the rest of the chain (intermediates…root)
  password_file       the key file's password (else $SIGSCOPE_PASSWORD / $COSIGN_PASSWORD)
  signer_ca, signer_cert, signer_key, signer_token_file, signer_timeout   as the --signer-* flags
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Mapping
from typing import Any, BinaryIO, TextIO

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sigscope import __version__
from sigscope.errors import DeadlineError, SigscopeError, UsageError
from sigscope.keys import HashSigner
from sigscope.notation_plugin import protocol as p

MAX_REQUEST = 4 * 1024 * 1024
_CONFIG_KEYS = frozenset(
    {
        "certificate_chain",
        "password_file",
        "signer_ca",
        "signer_cert",
        "signer_key",
        "signer_token_file",
        "signer_timeout",
    }
)


def _string(request: Mapping[str, Any], field: str) -> str:
    value = request.get(field)
    if not isinstance(value, str) or not value:
        raise p.PluginError(p.VALIDATION_ERROR, f"request field {field!r} is missing or not a string")
    return value


def _config(request: Mapping[str, Any]) -> dict[str, str]:
    config = request.get("pluginConfig") or {}
    if not isinstance(config, dict) or not all(isinstance(v, str) for v in config.values()):
        raise p.PluginError(p.VALIDATION_ERROR, "pluginConfig must map strings to strings")
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise p.PluginError(
            p.VALIDATION_ERROR,
            f"unknown pluginConfig key {unknown[0]!r} (known: {', '.join(sorted(_CONFIG_KEYS))})",
        )
    return config


def _contract(request: Mapping[str, Any]) -> None:
    version = _string(request, "contractVersion")
    if version.split(".")[0] != p.CONTRACT_VERSION.split(".")[0]:
        raise p.PluginError(
            p.UNSUPPORTED_CONTRACT_VERSION, f"contract version {version[:20]!r} is not supported"
        )


def _open(key_id: str, config: Mapping[str, str]) -> HashSigner:
    from sigscope.cli.sign import load_signer
    from sigscope.keys.remote import RemoteSignerOptions

    try:
        timeout = float(config.get("signer_timeout", "30"))
    except ValueError:
        raise p.PluginError(p.VALIDATION_ERROR, "pluginConfig signer_timeout is not a number") from None
    remote = RemoteSignerOptions(
        ca_file=config.get("signer_ca"),
        cert_file=config.get("signer_cert"),
        key_file=config.get("signer_key"),
        token_file=config.get("signer_token_file"),
        timeout=timeout,
    )
    signer = load_signer(key_id, config.get("password_file"), remote)
    if not callable(getattr(signer, "sign_with", None)):
        raise p.PluginError(p.VALIDATION_ERROR, f"key {key_id} cannot sign with a chosen hash")
    return signer  # type: ignore[return-value]


def _key_spec(signer: HashSigner) -> p.KeySpec:
    key = signer.public_key()
    name = None
    if isinstance(key, rsa.RSAPublicKey):
        name = f"RSA-{key.key_size}"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        name = f"EC-{key.curve.key_size}"
    spec = p.KEY_SPECS.get(name or "")
    if spec is None:
        raise p.PluginError(p.VALIDATION_ERROR, "the key is not RSA 2048/3072/4096 or EC P-256/384/521")
    return spec


def _chain(signer: HashSigner, config: Mapping[str, str]) -> tuple[x509.Certificate, ...]:
    """certificate_chain when it starts with the key's certificate; else the certificate the key's home keeps
    (a token's, a signing service's) followed by certificate_chain (intermediates…root)."""
    from sigscope.keys.signer import CertifiedSigner, chain_for_key, same_public_key

    given: list[x509.Certificate] = []
    path = config.get("certificate_chain")
    if path is not None:
        from sigscope.keys.files import load_certificates_file

        given = load_certificates_file(path, "pluginConfig certificate_chain")
    kept = signer.certificate_chain() if isinstance(signer, CertifiedSigner) else ()
    chain = chain_for_key(signer.public_key(), kept, given)
    if not chain:
        raise p.PluginError(
            p.VALIDATION_ERROR, "no certificate chain: set pluginConfig certificate_chain=PEM"
        )
    if not same_public_key(chain[0].public_key(), signer.public_key()):
        raise p.PluginError(p.VALIDATION_ERROR, "the certificate chain's leaf is not the key's certificate")
    return chain


def metadata() -> dict[str, Any]:
    return {
        "name": p.PLUGIN_NAME,
        "description": "Signs with sigscope keys: key files, PKCS#11 tokens, remote+https:// services",
        "version": __version__,
        "url": "https://github.com/sigscope/sigscope",
        "supportedContractVersions": [p.CONTRACT_VERSION],
        "capabilities": [p.RAW_SIGNER],
    }


def describe_key(request: Mapping[str, Any]) -> dict[str, Any]:
    _contract(request)
    key_id = _string(request, "keyId")
    signer = _open(key_id, _config(request))
    return {"keyId": key_id, "keySpec": _key_spec(signer).name}


def generate_signature(request: Mapping[str, Any]) -> dict[str, Any]:
    from sigscope.keys import prehashed

    _contract(request)
    key_id = _string(request, "keyId")
    config = _config(request)
    wanted = _string(request, "keySpec")
    hash_name = _string(request, "hashAlgorithm")
    try:
        payload = base64.b64decode(_string(request, "payload"), validate=True)
    except (binascii.Error, ValueError):
        raise p.PluginError(p.VALIDATION_ERROR, "payload is not base64") from None
    signer = _open(key_id, config)
    spec = _key_spec(signer)
    if wanted != spec.name:
        raise p.PluginError(p.VALIDATION_ERROR, f"keySpec {wanted[:20]!r} is not this key's ({spec.name})")
    if hash_name != spec.hash:
        raise p.PluginError(
            p.VALIDATION_ERROR, f"hashAlgorithm {hash_name[:20]!r} is not {spec.hash} for {spec.name}"
        )
    chain = _chain(signer, config)
    _, hash_algorithm = prehashed.split(spec.signing_algorithm)
    signature = signer.sign_with(payload, hash_algorithm, pss=spec.name.startswith("RSA"))
    key = signer.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        from sigscope.formats.notation_build import raw_ecdsa

        signature = raw_ecdsa(signature, key)
    return {
        "keyId": key_id,
        "signature": base64.b64encode(signature).decode("ascii"),
        "signingAlgorithm": spec.signing_algorithm,
        "certificateChain": [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii") for c in chain
        ],
    }


def _error_code(exc: SigscopeError) -> str:
    if isinstance(exc, p.PluginError):
        return exc.code
    if isinstance(exc, DeadlineError):
        return p.TIMEOUT
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return p.ACCESS_DENIED
    if status == 429:
        return p.THROTTLED
    if isinstance(exc, UsageError):
        return p.VALIDATION_ERROR
    return p.ERROR


def respond(command: str, raw: bytes) -> dict[str, Any]:
    """The response to one command (raises :class:`PluginError` / :class:`SigscopeError`)."""
    handlers = {p.DESCRIBE_KEY: describe_key, p.GENERATE_SIGNATURE: generate_signature}
    if command != p.GET_METADATA and command not in handlers:
        raise p.PluginError(p.VALIDATION_ERROR, f"unknown command {command[:40]!r}")
    if len(raw) > MAX_REQUEST:
        raise p.PluginError(p.VALIDATION_ERROR, f"request larger than {MAX_REQUEST} bytes")
    try:
        request = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise p.PluginError(p.VALIDATION_ERROR, "the request is not JSON") from None
    if not isinstance(request, dict):
        raise p.PluginError(p.VALIDATION_ERROR, "the request is not a JSON object")
    if command == p.GET_METADATA:
        _config(request)
        return metadata()
    return handlers[command](request)


def run(argv: list[str], stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    if len(argv) != 1:
        print(
            json.dumps({"errorCode": p.VALIDATION_ERROR, "errorMessage": "usage: notation-sigscope COMMAND"}),
            file=stderr,
        )
        return 1
    try:
        response = respond(argv[0], stdin.read(MAX_REQUEST + 1))
    except SigscopeError as exc:
        message = f"{exc.message}; {exc.hint}" if exc.hint else exc.message
        print(json.dumps({"errorCode": _error_code(exc), "errorMessage": message}), file=stderr)
        return 1
    except Exception as exc:  # the protocol wants JSON on stderr, never a traceback
        print(json.dumps({"errorCode": p.ERROR, "errorMessage": f"{type(exc).__name__}: {exc}"}), file=stderr)
        return 1
    stdout.write(json.dumps(response))
    stdout.flush()
    return 0


def main() -> None:
    """Console script entry point."""
    from sigscope.cli.main import quiet_library_deprecations

    quiet_library_deprecations()
    # Only the response may reach stdout: anything else a library prints goes to stderr.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    code = run(sys.argv[1:], sys.stdin.buffer, real_stdout, sys.stderr)
    sys.stdout = real_stdout
    raise SystemExit(code)
