"""signify, importable on machines where its oscrypto dependency is not.

signify parses Authenticode (PKCS#7 SignedData with SpcIndirectDataContent, nested signatures,
legacy and RFC 3161 countersignatures) and computes the PE image hash. It imports `oscrypto.asymmetric`
for one thing only: checking RSA/DSA/ECDSA signatures in `Certificate.verify_signature`. PyPI
oscrypto 1.3.0 refuses to load at all when the OpenSSL version has a two-digit patch number
("OpenSSL 3.0.19": its regex wants `\\d\\.\\d\\.\\d\\b`), so `import signify.authenticode` fails here.

The workaround is contained: when oscrypto cannot load, signify is imported with a small stand-in for
`oscrypto.asymmetric` built on cryptography, and the stand-in is removed from `sys.modules` again so
no other importer of oscrypto ever sees it. sigscope itself does its signature checks with
cryptography (files/authenticode.py); the stand-in only keeps signify's own verifier honest.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa

from sigscope.files.pkcs7 import _HASHES  # the digest names signify hands over are asn1crypto's, as ours


class _PublicKey:
    def __init__(self, key: Any) -> None:
        self.key = key
        if isinstance(key, rsa.RSAPublicKey):
            self.algorithm = "rsa"
        elif isinstance(key, dsa.DSAPublicKey):
            self.algorithm = "dsa"
        elif isinstance(key, ec.EllipticCurvePublicKey):
            self.algorithm = "ec"
        else:
            self.algorithm = type(key).__name__


def _load_public_key(source: Any) -> _PublicKey:
    der = source.dump() if hasattr(source, "dump") else bytes(source)
    return _PublicKey(serialization.load_der_public_key(der))


def _verify(public_key: _PublicKey, signature: bytes, data: bytes, hash_name: str) -> None:
    key = public_key.key
    try:
        if hash_name == "raw":
            if not isinstance(key, rsa.RSAPublicKey):
                raise ValueError("raw verification needs an RSA key")
            recovered = key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
            if recovered != data:
                raise InvalidSignature()
            return
        algorithm = _HASHES[hash_name]()
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, data, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            raise ValueError(f"unsupported key type {public_key.algorithm}")
    except InvalidSignature:
        raise ValueError("signature is invalid") from None
    except KeyError:
        raise ValueError(f"unsupported hash {hash_name}") from None


def _stand_in() -> types.ModuleType:
    module = types.ModuleType("oscrypto.asymmetric")
    module.load_public_key = _load_public_key  # type: ignore[attr-defined]
    module.rsa_pkcs1v15_verify = _verify  # type: ignore[attr-defined]
    module.dsa_verify = _verify  # type: ignore[attr-defined]
    module.ecdsa_verify = _verify  # type: ignore[attr-defined]
    return module


def _import_signify() -> None:
    try:
        importlib.import_module("oscrypto.asymmetric")
    except Exception:  # LibraryNotFoundError, OSError, ImportError: oscrypto cannot load
        pass
    else:
        importlib.import_module("signify.authenticode")
        return
    saved = sys.modules.get("oscrypto.asymmetric")
    sys.modules["oscrypto.asymmetric"] = _stand_in()
    try:
        importlib.import_module("signify.authenticode")
    finally:
        if saved is None:
            sys.modules.pop("oscrypto.asymmetric", None)
        else:
            sys.modules["oscrypto.asymmetric"] = saved


_import_signify()

# Re-exported for the handlers; imported only after the workaround above has run.
from signify.asn1.spc import SpcAttributeType, SpcPeImageData, SpcSpOpusInfo  # noqa: E402
from signify.authenticode.indirect_data import IndirectData, PeImageData  # noqa: E402
from signify.authenticode.signed_data import AuthenticodeSignature  # noqa: E402
from signify.authenticode.signed_file.pe import SignedPEFile  # noqa: E402
from signify.authenticode.tsp import RFC3161SignedData  # noqa: E402
from signify.exceptions import SignifyError  # noqa: E402

__all__ = [
    "AuthenticodeSignature",
    "IndirectData",
    "PeImageData",
    "RFC3161SignedData",
    "SignedPEFile",
    "SignifyError",
    "SpcAttributeType",
    "SpcPeImageData",
    "SpcSpOpusInfo",
]
