"""Signing keys: the :class:`Signer` protocol and cosign key files."""

from __future__ import annotations

from sigscope.keys.cosign_keys import (
    COSIGN_LABEL,
    KEY_KINDS,
    SIGSTORE_LABEL,
    KdfParams,
    KeyFileExistsError,
    KeyPasswordError,
    PemKeyFile,
    encrypted_private_pem,
    generate,
    is_encrypted,
    key_pair_paths,
    load_private_key,
    public_pem,
    read_pem,
    write_key_pair,
)
from sigscope.keys.signer import (
    FileSigner,
    HashSigner,
    KeyFormatError,
    Signer,
    algorithm_name,
    check_signing_key,
)

__all__ = [
    "COSIGN_LABEL",
    "KEY_KINDS",
    "SIGSTORE_LABEL",
    "FileSigner",
    "HashSigner",
    "KdfParams",
    "KeyFileExistsError",
    "KeyFormatError",
    "KeyPasswordError",
    "PemKeyFile",
    "Signer",
    "algorithm_name",
    "check_signing_key",
    "encrypted_private_pem",
    "generate",
    "is_encrypted",
    "key_pair_paths",
    "load_private_key",
    "public_pem",
    "read_pem",
    "write_key_pair",
]
